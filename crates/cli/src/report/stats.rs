//! The numbers of a report, computed from batch lines (docs/BATCH.md, "Reports"): pure functions
//! over parsed JSON, so the tests can check them against their own arithmetic.

use std::collections::{BTreeMap, BTreeSet};

use llava_lens_tensor::Rng;
use serde::Serialize;
use serde_json::Value;

/// One explained example of a batch output, the parts a report reads.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub tags: Vec<String>,
    pub head_scores: Vec<Vec<f32>>,
    pub best_layer: usize,
    /// The best head's score of every position, and where the image's positions are.
    pub position_scores: Vec<f32>,
    pub image_offset: usize,
    pub image_tokens: usize,
    pub grid: usize,
    pub patch_scores: Vec<f32>,
    pub baseline_map: Vec<f32>,
    /// The model's top next token as text, and the expected answer when the example has one.
    pub prediction: Option<String>,
    pub answer: Option<String>,
    /// The object's box in the original image and the region the model saw (x, y, w, h).
    pub bbox: Option<[f32; 4]>,
    pub crop: Option<[f32; 4]>,
    /// Per patch, the share of it the object's mask covers (`batch` with a `mask` field).
    pub mask_coverage: Option<Vec<f32>>,
    /// `batch --analyses` readings, when the line has them.
    pub analyses: Option<super::analyses::AnalysisRow>,
    /// `batch --zoom` answers, when the line has them.
    pub zoom: Option<super::zoom::ZoomRow>,
}

/// The explained rows of a batch output and how many lines were errors. A line that is neither
/// is an error naming it.
pub fn rows(text: &str, name: &str) -> anyhow::Result<(Vec<Row>, usize)> {
    let (mut rows, mut errors) = (Vec::new(), 0);
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| anyhow::anyhow!("{name}: line {}: {what}; expected a line of `llava-lens batch`", n + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&format!("not JSON ({e})")))?;
        if v.get("error").is_some() {
            errors += 1;
            continue;
        }
        let floats = |v: &Value| -> Option<Vec<f32>> { v.as_array()?.iter().map(|x| x.as_f64().map(|f| f as f32)).collect() };
        let text = |v: &Value| v.as_str().map(String::from);
        let get = |k: &str| v.get(k).ok_or_else(|| bad(&format!("no {k:?}")));
        let head_scores: Vec<Vec<f32>> =
            get("head_scores")?.as_array().and_then(|a| a.iter().map(floats).collect()).ok_or_else(|| bad("head_scores is not a grid"))?;
        let example = v.get("example").cloned().unwrap_or(Value::Null);
        let four = |v: &Value| -> Option<[f32; 4]> { floats(v)?.try_into().ok() };
        let usize_of = |k: &str| get(k).and_then(|x| x.as_u64().map(|u| u as usize).ok_or_else(|| bad(&format!("{k} is not a count"))));
        rows.push(Row {
            id: text(get("id")?).ok_or_else(|| bad("id is not text"))?,
            tags: example.get("tags").and_then(Value::as_array).map(|t| t.iter().filter_map(text).collect()).unwrap_or_default(),
            best_layer: get("best_head")?.get("layer").and_then(Value::as_u64).ok_or_else(|| bad("best_head has no layer"))? as usize,
            head_scores,
            position_scores: floats(get("position_scores")?).ok_or_else(|| bad("position_scores"))?,
            image_offset: usize_of("image_offset")?,
            image_tokens: usize_of("image_tokens")?,
            grid: usize_of("grid")?,
            patch_scores: floats(get("patch_scores")?).ok_or_else(|| bad("patch_scores"))?,
            baseline_map: floats(get("baseline_map")?).ok_or_else(|| bad("baseline_map"))?,
            prediction: v.get("top").and_then(|t| t.get(0)).and_then(|t| t.get("text")).and_then(text),
            answer: example.get("answer").and_then(text),
            bbox: example.get("box").and_then(four),
            crop: v.get("crop").and_then(|c| {
                Some([c.get("x")?, c.get("y")?, c.get("width")?, c.get("height")?].map(|x| x.as_f64().unwrap_or(0.0) as f32))
            }),
            mask_coverage: v.get("mask_coverage").and_then(floats),
            analyses: super::analyses::AnalysisRow::of(&v),
            zoom: super::zoom::ZoomRow::of(&v),
        });
    }
    Ok((rows, errors))
}

/// `[layers][heads]` mean of the rows' head scores (rows of another shape are an error upstream).
pub fn mean_grid(rows: &[&Row]) -> Vec<Vec<f32>> {
    let Some(first) = rows.first() else { return Vec::new() };
    let mut sum = vec![vec![0f64; first.head_scores[0].len()]; first.head_scores.len()];
    for r in rows {
        for (l, hs) in r.head_scores.iter().enumerate() {
            for (h, &s) in hs.iter().enumerate() {
                sum[l][h] += s as f64;
            }
        }
    }
    sum.into_iter().map(|r| r.into_iter().map(|s| (s / rows.len() as f64) as f32).collect()).collect()
}

/// Heads `(layer, head)` by score, best first (ties by position in the grid).
pub fn ranked(grid: &[Vec<f32>]) -> Vec<(usize, usize)> {
    let heads = grid.first().map_or(0, Vec::len);
    let mut all: Vec<(usize, usize)> = (0..grid.len()).flat_map(|l| (0..heads).map(move |h| (l, h))).collect();
    all.sort_by(|a, b| grid[b.0][b.1].total_cmp(&grid[a.0][a.1]).then(a.cmp(b)));
    all
}

/// Share of the rows in which each head is among their own top `k`.
pub fn top_k_frequency(rows: &[&Row], k: usize) -> Vec<Vec<f32>> {
    let Some(first) = rows.first() else { return Vec::new() };
    let mut count = vec![vec![0usize; first.head_scores[0].len()]; first.head_scores.len()];
    for r in rows {
        for &(l, h) in ranked(&r.head_scores).iter().take(k) {
            count[l][h] += 1;
        }
    }
    count.into_iter().map(|c| c.into_iter().map(|n| n as f32 / rows.len() as f32).collect()).collect()
}

/// How many rows have their best head in each layer.
pub fn best_head_layers(rows: &[&Row], layers: usize) -> Vec<usize> {
    let mut n = vec![0; layers];
    rows.iter().filter(|r| r.best_layer < layers).for_each(|r| n[r.best_layer] += 1);
    n
}

/// Where the best head's positive position importance lies, as shares of its sum: the text
/// before the image (the template's start), the image, the text after it (the question and the
/// answer prefix). A text-only prompt has everything "after" (its image is empty at 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Shares {
    pub before_image: f64,
    pub image: f64,
    pub after_image: f64,
}

pub fn position_shares(r: &Row) -> Option<Shares> {
    let pos =
        |range: std::ops::Range<usize>| -> f64 { r.position_scores.get(range).unwrap_or(&[]).iter().map(|&s| s.max(0.0) as f64).sum() };
    let end = r.image_offset + r.image_tokens;
    let (b, i, a) = (pos(0..r.image_offset), pos(r.image_offset..end), pos(end..r.position_scores.len()));
    let total = b + i + a;
    (total > 0.0).then(|| Shares { before_image: b / total, image: i / total, after_image: a / total })
}

pub fn mean_shares(rows: &[&Row]) -> Option<Shares> {
    let all: Vec<Shares> = rows.iter().filter_map(|r| position_shares(r)).collect();
    let n = all.len() as f64;
    (!all.is_empty()).then(|| Shares {
        before_image: all.iter().map(|s| s.before_image).sum::<f64>() / n,
        image: all.iter().map(|s| s.image).sum::<f64>() / n,
        after_image: all.iter().map(|s| s.after_image).sum::<f64>() / n,
    })
}

/// A token's text without the vocabulary's word-start mark, lower case.
pub fn word(t: &str) -> String {
    t.trim_start_matches(['▁', 'Ġ']).trim().to_lowercase()
}

/// Of the rows with an expected answer: how many, and the share whose top next token is it.
pub fn accuracy(rows: &[&Row]) -> (usize, Option<f64>) {
    let asked: Vec<&&Row> = rows.iter().filter(|r| r.answer.is_some()).collect();
    let right = asked.iter().filter(|r| r.prediction.as_deref().map(word) == r.answer.as_deref().map(word)).count();
    (asked.len(), (!asked.is_empty()).then(|| right as f64 / asked.len() as f64))
}

/// Which patches' centres fall in the row's box, in the original image through the crop box.
fn patches_in_box(r: &Row) -> Option<Vec<bool>> {
    let ([x0, y0, x1, y1], [cx, cy, cw, ch], g) = (r.bbox?, r.crop?, r.grid);
    (g > 0 && r.patch_scores.len() == g * g).then(|| {
        (0..g * g)
            .map(|p| {
                let x = cx + ((p % g) as f32 + 0.5) / g as f32 * cw;
                let y = cy + ((p / g) as f32 + 0.5) / g as f32 * ch;
                x >= x0 && x < x1 && y >= y0 && y < y1
            })
            .collect()
    })
}

/// How much of each patch is the object: the mask's share of its pixels when the row has a mask
/// (`mask_coverage`), else 1 for the patches whose centre is in the box; None without either.
fn object_region(r: &Row) -> Option<(Vec<f64>, bool)> {
    match &r.mask_coverage {
        Some(c) if c.len() == r.patch_scores.len() && !c.is_empty() => Some((c.iter().map(|&v| v as f64).collect(), true)),
        _ => patches_in_box(r).map(|b| (b.into_iter().map(|i| i as u8 as f64).collect(), false)),
    }
}

/// The pointing game over the rows with a mask or a box: the share whose top patch holds some of
/// the object (a mask: any of its pixels, as `eval pointing` counts; a box: the patch's centre
/// inside), and the share of the positive map's mass on the object (each patch weighted by its
/// object share), for the paper's map, mean attention, and a uniformly random patch (its exact
/// expectation: the share of patches that would hit, and the mean object share).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pointing {
    pub examples: usize,
    /// How many of them were scored against a mask (the rest against a box).
    pub with_mask: usize,
    pub hit_rate: f64,
    pub hit_rate_mean_attention: f64,
    pub hit_rate_random: f64,
    pub mass_in_box: f64,
    pub mass_in_box_mean_attention: f64,
    pub mass_in_box_random: f64,
}

pub fn pointing(rows: &[&Row]) -> Option<Pointing> {
    let mut p = Pointing::default();
    for r in rows {
        let Some((weight, mask)) = object_region(r) else { continue };
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap_or(0);
        let mass = |v: &[f32]| {
            let total: f64 = v.iter().map(|&s| s.max(0.0) as f64).sum();
            if total > 0.0 { v.iter().zip(&weight).map(|(&s, w)| s.max(0.0) as f64 * w).sum::<f64>() / total } else { 0.0 }
        };
        let n = weight.len() as f64;
        p.examples += 1;
        p.with_mask += mask as usize;
        p.hit_rate += (weight[argmax(&r.patch_scores)] > 0.0) as u8 as f64;
        p.hit_rate_mean_attention += (weight[argmax(&r.baseline_map)] > 0.0) as u8 as f64;
        p.hit_rate_random += weight.iter().filter(|&&w| w > 0.0).count() as f64 / n;
        p.mass_in_box += mass(&r.patch_scores);
        p.mass_in_box_mean_attention += mass(&r.baseline_map);
        p.mass_in_box_random += weight.iter().sum::<f64>() / n;
    }
    let n = p.examples as f64;
    (p.examples > 0).then(|| Pointing {
        examples: p.examples,
        with_mask: p.with_mask,
        hit_rate: p.hit_rate / n,
        hit_rate_mean_attention: p.hit_rate_mean_attention / n,
        hit_rate_random: p.hit_rate_random / n,
        mass_in_box: p.mass_in_box / n,
        mass_in_box_mean_attention: p.mass_in_box_mean_attention / n,
        mass_in_box_random: p.mass_in_box_random / n,
    })
}

/// Spearman's rank correlation of two grids' heads (average ranks for ties).
pub fn spearman(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let flat = |g: &[Vec<f32>]| g.iter().flatten().copied().collect::<Vec<f32>>();
    let (x, y) = (ranks(&flat(a)), ranks(&flat(b)));
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(&y).map(|(p, q)| (p - mx) * (q - my)).sum();
    let (vx, vy): (f64, f64) = (x.iter().map(|p| (p - mx).powi(2)).sum(), y.iter().map(|q| (q - my).powi(2)).sum());
    if vx == 0.0 || vy == 0.0 { 0.0 } else { cov / (vx * vy).sqrt() }
}

fn ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// How many of the top `k` heads of two grids are the same.
pub fn top_overlap(a: &[Vec<f32>], b: &[Vec<f32>], k: usize) -> usize {
    let ta: BTreeSet<_> = ranked(a).into_iter().take(k).collect();
    ranked(b).into_iter().take(k).filter(|h| ta.contains(h)).count()
}

/// Two runs over the same examples (matched by id): their mean grids' rank correlation and
/// top-k overlap, each with a 95 % percentile bootstrap interval over the examples.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub matched_examples: usize,
    pub spearman: f64,
    pub spearman_ci95: [f64; 2],
    pub top_k: usize,
    pub top_k_overlap: usize,
    pub top_k_overlap_ci95: [f64; 2],
    pub bootstrap_samples: usize,
}

pub fn compare(a: &[Row], b: &[Row], k: usize, samples: usize, seed: u64) -> Option<Comparison> {
    let by_id: BTreeMap<&str, &Row> = b.iter().map(|r| (r.id.as_str(), r)).collect();
    let pairs: Vec<(&Row, &Row)> = a.iter().filter_map(|r| Some((r, *by_id.get(r.id.as_str())?))).collect();
    let same_shape = |(x, y): &(&Row, &Row)| x.head_scores.len() == y.head_scores.len() && x.head_scores[0].len() == y.head_scores[0].len();
    if pairs.is_empty() || !pairs.iter().all(same_shape) {
        return None;
    }
    let stats = |idx: &[usize]| {
        let (ga, gb) = (
            mean_grid(&idx.iter().map(|&i| pairs[i].0).collect::<Vec<_>>()),
            mean_grid(&idx.iter().map(|&i| pairs[i].1).collect::<Vec<_>>()),
        );
        (spearman(&ga, &gb), top_overlap(&ga, &gb, k) as f64)
    };
    let all: Vec<usize> = (0..pairs.len()).collect();
    let (rho, overlap) = stats(&all);
    let mut rng = Rng::new(seed);
    let (mut rhos, mut overlaps) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let idx: Vec<usize> = (0..pairs.len()).map(|_| rng.below(pairs.len() as u64) as usize).collect();
        let (r, o) = stats(&idx);
        rhos.push(r);
        overlaps.push(o);
    }
    Some(Comparison {
        matched_examples: pairs.len(),
        spearman: rho,
        spearman_ci95: percentiles(&mut rhos),
        top_k: k,
        top_k_overlap: overlap as usize,
        top_k_overlap_ci95: percentiles(&mut overlaps),
        bootstrap_samples: samples,
    })
}

/// The 2.5th and 97.5th percentiles (nearest rank).
fn percentiles(v: &mut [f64]) -> [f64; 2] {
    if v.is_empty() {
        return [f64::NAN, f64::NAN];
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.025), at(0.975)]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row(id: &str, heads: Vec<Vec<f32>>) -> Row {
        Row {
            id: id.into(),
            tags: vec![],
            best_layer: ranked(&heads)[0].0,
            head_scores: heads,
            position_scores: vec![1.0, -5.0, 2.0, 3.0, 0.0, 4.0],
            image_offset: 1,
            image_tokens: 4,
            grid: 2,
            patch_scores: vec![-5.0, 2.0, 3.0, 0.0],
            baseline_map: vec![0.1, 0.2, 0.3, 0.4],
            prediction: Some("▁Purple".into()),
            answer: Some("purple".into()),
            bbox: Some([0.0, 0.0, 10.0, 5.0]),
            crop: Some([0.0, 0.0, 10.0, 10.0]),
            mask_coverage: None,
            analyses: None,
            zoom: None,
        }
    }

    #[test]
    fn grids_ranks_shares_and_pointing_by_hand() {
        let a = row("a", vec![vec![1.0, 3.0], vec![2.0, 0.0]]);
        let b = row("b", vec![vec![3.0, 1.0], vec![0.0, 2.0]]);
        let rows = [&a, &b];
        assert_eq!(mean_grid(&rows), vec![vec![2.0, 2.0], vec![1.0, 1.0]]);
        assert_eq!(ranked(&a.head_scores), vec![(0, 1), (1, 0), (0, 0), (1, 1)]);
        // Top 2: a has 0.1 and 1.0, b has 0.0 and 1.1.
        assert_eq!(top_k_frequency(&rows, 2), vec![vec![0.5, 0.5], vec![0.5, 0.5]]);
        assert_eq!(best_head_layers(&rows, 2), vec![2, 0]);
        // Positive position importance: before 1, image 2 + 3 + 0 = 5, after 4 (of 10).
        assert_eq!(position_shares(&a), Some(Shares { before_image: 0.1, image: 0.5, after_image: 0.4 }));
        assert_eq!(accuracy(&rows), (2, Some(1.0)));
        // The box holds the top row's two patch centres (y = 2.5): the map's best patch (3.0 at
        // index 2) is below it; mean attention's (index 3) too; half the patches are inside.
        let p = pointing(&rows).unwrap();
        assert_eq!((p.examples, p.hit_rate, p.hit_rate_mean_attention, p.hit_rate_random), (2, 0.0, 0.0, 0.5));
        assert!((p.mass_in_box - 0.4).abs() < 1e-9 && (p.mass_in_box_mean_attention - 0.3).abs() < 1e-6, "{p:?}");
        // A mask takes over from the box: a quarter of patch 2 (the map's best) is the object,
        // and all of patch 0; mean attention's best (patch 3) misses.
        let mut m = a.clone();
        m.mask_coverage = Some(vec![1.0, 0.0, 0.25, 0.0]);
        let p = pointing(&[&m]).unwrap();
        assert_eq!((p.with_mask, p.hit_rate, p.hit_rate_mean_attention, p.hit_rate_random), (1, 1.0, 0.0, 0.5));
        // Positive map 0, 2, 3, 0 (sum 5): 3 x 0.25 on the object; the random patch: mean share.
        assert!((p.mass_in_box - 0.15).abs() < 1e-9 && (p.mass_in_box_random - 0.3125).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn spearman_and_overlap_of_two_runs() {
        let g = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let rev = vec![vec![4.0, 3.0], vec![2.0, 1.0]];
        assert!((spearman(&g, &g) - 1.0).abs() < 1e-12 && (spearman(&g, &rev) + 1.0).abs() < 1e-12);
        assert_eq!((top_overlap(&g, &g, 2), top_overlap(&g, &rev, 2)), (2, 0));
        let a: Vec<Row> = (0..8).map(|i| row(&format!("e{i}"), vec![vec![1.0 + i as f32, 2.0], vec![3.0, 4.0]])).collect();
        let c = compare(&a, &a, 2, 200, 7).unwrap();
        assert_eq!((c.matched_examples, c.top_k_overlap), (8, 2));
        assert!((c.spearman - 1.0).abs() < 1e-12 && c.spearman_ci95 == [1.0, 1.0], "{c:?}");
    }
}
