//! The "What if…" results a share link carries beside its explanation: the knockout, the head
//! ablation, activation patching, zoom and the whole answer, as the page showed them. Each is
//! checked before anything is drawn, as the explanation is.

use llava_lens_explain::intervene::Outcome;
use llava_lens_explain::intervene::ablation::HeadAblation;
use llava_lens_explain::intervene::patching::Patching;
use llava_lens_explain::intervene::zoom::Zoomed;
use serde::{Deserialize, Serialize};

use super::{MAX_TOP, Recorded, check_image};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedWhatIf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knockout: Option<SharedKnockout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ablation: Option<HeadAblation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patching: Option<SharedPatching>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<SharedZoom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<SharedAnswer>,
}

impl SharedWhatIf {
    pub fn is_empty(&self) -> bool {
        *self == SharedWhatIf::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedKnockout {
    pub patches: Vec<usize>,
    pub before: Outcome,
    pub after: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPatching {
    pub patching: Patching,
    /// A label per sequence position (its token, or the patch's row and column).
    pub labels: Vec<String>,
    pub target: String,
    pub contrast: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedZoom {
    pub before: Outcome,
    pub by_map: Zoomed,
    pub random: Vec<Zoomed>,
    #[serde(with = "super::b64")]
    pub window_jpeg: Vec<u8>,
}

/// The answer's words and each word's recorded explanation. The records carry no picture of
/// their own (`crop_jpeg` empty): they share the link's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedAnswer {
    pub tokens: Vec<String>,
    pub recorded: Vec<Recorded>,
    /// The word the link's main view shows.
    pub shown: usize,
}

/// Most answer words, random windows and positions a link may carry (the page makes 4, 3 and
/// one sequence's worth).
const MAX_WORDS: usize = 64;
const MAX_WINDOWS: usize = 64;
const MAX_POSITIONS: usize = 1 << 14;

fn check_outcome(o: &Outcome, what: &str) -> Result<(), String> {
    if o.top.is_empty() || o.top.len() > MAX_TOP {
        return Err(format!("its {what} lists {} top tokens (1 to {MAX_TOP})", o.top.len()));
    }
    let numbers = std::iter::once(o.target.log_prob)
        .chain(o.contrast.as_ref().map(|c| c.log_prob))
        .chain(o.logit_diff)
        .chain(o.top.iter().map(|t| t.log_prob));
    finite(numbers, what)
}

fn finite(mut numbers: impl Iterator<Item = f32>, what: &str) -> Result<(), String> {
    match numbers.find(|v| !v.is_finite()) {
        Some(v) => Err(format!("its {what} holds a non-finite number ({v})")),
        None => Ok(()),
    }
}

/// Checks every part against the explanation `r` it was made from (its grid and head grid).
pub fn check(w: &SharedWhatIf, r: &Recorded) -> Result<(), String> {
    let cells = r.grid * r.grid;
    let (layers, heads) = (r.head_scores.len(), r.head_scores[0].len());
    if let Some(k) = &w.knockout {
        if k.patches.is_empty() || k.patches.len() > cells || k.patches.iter().any(|&p| p >= cells) {
            return Err(format!("its knockout names patches outside its {0}x{0} grid", r.grid));
        }
        check_outcome(&k.before, "knockout")?;
        check_outcome(&k.after, "knockout")?;
    }
    if let Some(a) = &w.ablation {
        if a.heads.is_empty() || a.heads.iter().any(|&(l, h)| l >= layers || h >= heads) {
            return Err(format!("its ablation names heads outside its {layers} x {heads} head grid"));
        }
        check_outcome(&a.before, "ablation")?;
        check_outcome(&a.after, "ablation")?;
    }
    if let Some(p) = &w.patching {
        let q = &p.patching;
        let seq = p.labels.len();
        if seq == 0 || seq > MAX_POSITIONS || q.positions.iter().any(|&i| i >= seq) {
            return Err(format!("its patching has positions outside its {seq} labelled positions"));
        }
        if q.image_offset.checked_add(q.image_tokens).is_none_or(|end| end > seq) {
            return Err("its patching's image lies outside its sequence".into());
        }
        if q.image_tokens != 0 && q.image_tokens != cells {
            return Err(format!("its patching has {} image positions, not the {cells} of its grid", q.image_tokens));
        }
        if q.positions.len() > seq {
            return Err(format!("its patching lists {} positions of a sequence of {seq}", q.positions.len()));
        }
        if q.heads.len() != layers || q.heads.iter().any(|row| row.len() != heads) {
            return Err(format!("its patching's head grid is not {layers} x {heads}"));
        }
        if q.resid.len() != layers || q.resid.iter().any(|row| row.len() != q.positions.len()) {
            return Err(format!("its patching's residual grid is not {layers} x {}", q.positions.len()));
        }
        check_outcome(&q.clean, "patching")?;
        check_outcome(&q.corrupted, "patching")?;
        finite(q.heads.iter().chain(&q.resid).flatten().copied(), "patching")?;
    }
    if let Some(z) = &w.zoom {
        if z.random.len() > MAX_WINDOWS {
            return Err(format!("its zoom has {} random windows (at most {MAX_WINDOWS})", z.random.len()));
        }
        for zoomed in std::iter::once(&z.by_map).chain(&z.random) {
            let win = zoomed.window;
            if win.side == 0 || win.row.saturating_add(win.side) > r.grid || win.col.saturating_add(win.side) > r.grid {
                return Err(format!("its zoom window is outside its {0}x{0} grid", r.grid));
            }
            check_outcome(&zoomed.outcome, "zoom")?;
            let c = zoomed.crop;
            finite([c.x, c.y, c.width, c.height].into_iter(), "zoom")?;
        }
        check_outcome(&z.before, "zoom")?;
        check_image(&z.window_jpeg, 1).map_err(|e| format!("its zoom window: {e}"))?;
    }
    if let Some(a) = &w.answer {
        let n = a.tokens.len();
        if n == 0 || n > MAX_WORDS || a.recorded.len() != n || a.shown >= n {
            return Err(format!("its answer has {n} words, {} explanations and shows word {}", a.recorded.len(), a.shown));
        }
        for (i, word) in a.recorded.iter().enumerate() {
            if word.grid != r.grid || word.head_scores.len() != layers {
                return Err(format!("its answer word {i} has another grid than the explanation"));
            }
            let with_picture = Recorded { crop_jpeg: r.crop_jpeg.clone(), whatif: None, ..word.clone() };
            super::check(&with_picture).map_err(|e| format!("its answer word {i}: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use llava_lens_explain::explanation::TokenInfo;
    use llava_lens_explain::intervene::ablation::Ablation;
    use llava_lens_explain::intervene::zoom::Window;
    use llava_lens_model::preprocess::CropBox;

    use super::*;
    use crate::share::tests::{jpeg, sample};
    use crate::share::{decode, encode};

    fn outcome(lp: f32) -> Outcome {
        let t = |id, lp| TokenInfo { id, text: Some(format!("t{id}")), log_prob: lp };
        Outcome { target: t(1, lp), contrast: Some(t(2, -3.0)), logit_diff: Some(lp + 3.0), top: vec![t(1, lp), t(2, -3.0)] }
    }

    fn zoomed(row: usize) -> Zoomed {
        Zoomed {
            window: Window { row, col: 0, side: 1 },
            crop: CropBox { x: 0.0, y: 4.0, width: 4.0, height: 4.0 },
            outcome: outcome(-0.5),
        }
    }

    /// Every part, on the 2 x 2 grid and 2 x 2 head grid of `sample()`.
    fn full() -> SharedWhatIf {
        let patching = Patching {
            target: 1,
            contrast: 2,
            clean: outcome(-0.1),
            corrupted: outcome(-2.0),
            positions: vec![1, 2],
            resid: vec![vec![1.0, 0.5], vec![0.25, 0.0]],
            heads: vec![vec![0.1, 0.2], vec![0.3, 0.4]],
            image_offset: 1,
            image_tokens: 4,
            runs: 8,
        };
        let word = |t: &str| Recorded { target: t.into(), crop_jpeg: Vec::new(), ..sample() };
        SharedWhatIf {
            knockout: Some(SharedKnockout { patches: vec![0, 3], before: outcome(-0.1), after: outcome(-1.5) }),
            ablation: Some(HeadAblation { mode: Ablation::Mean, heads: vec![(1, 1)], before: outcome(-0.1), after: outcome(-0.9) }),
            patching: Some(SharedPatching {
                patching,
                labels: (0..6).map(|i| format!("p{i}")).collect(),
                target: "▁red".into(),
                contrast: "▁blue".into(),
            }),
            zoom: Some(SharedZoom { before: outcome(-0.1), by_map: zoomed(1), random: vec![zoomed(0)], window_jpeg: jpeg(4, 4) }),
            answer: Some(SharedAnswer {
                tokens: vec!["▁red".into(), "▁.".into()], recorded: vec![word("▁red"), word("▁.")], shown: 1
            }),
        }
    }

    #[test]
    fn every_result_round_trips_in_a_link() {
        let r = Recorded { whatif: Some(full()), ..sample() };
        assert_eq!(decode(&encode(&r)).unwrap(), r);
        // A link without results is the link of before they existed.
        assert!(!serde_json::to_string(&sample()).unwrap().contains("whatif"));
    }

    #[test]
    fn inconsistent_results_are_refused_before_anything_is_drawn() {
        type Spoil = Box<dyn Fn(&mut SharedWhatIf)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("knockout names patches outside its 2x2 grid", Box::new(|w| w.knockout.as_mut().unwrap().patches.push(4))),
            ("knockout lists 0 top tokens", Box::new(|w| w.knockout.as_mut().unwrap().after.top.clear())),
            ("ablation names heads outside its 2 x 2 head grid", Box::new(|w| w.ablation.as_mut().unwrap().heads = vec![(2, 0)])),
            ("positions outside its 6 labelled positions", Box::new(|w| w.patching.as_mut().unwrap().patching.positions.push(6))),
            ("residual grid is not 2 x 2", Box::new(|w| w.patching.as_mut().unwrap().patching.resid[1].truncate(1))),
            ("head grid is not 2 x 2", Box::new(|w| w.patching.as_mut().unwrap().patching.heads.truncate(1))),
            ("image lies outside its sequence", Box::new(|w| w.patching.as_mut().unwrap().patching.image_tokens = usize::MAX)),
            ("has 3 image positions, not the 4", Box::new(|w| w.patching.as_mut().unwrap().patching.image_tokens = 3)),
            ("zoom window is outside its 2x2 grid", Box::new(|w| w.zoom.as_mut().unwrap().random[0].window.row = 2)),
            ("zoom window is outside its 2x2 grid", Box::new(|w| w.zoom.as_mut().unwrap().by_map.window.side = 0)),
            ("zoom window: its image does not decode", Box::new(|w| w.zoom.as_mut().unwrap().window_jpeg = vec![1, 2, 3])),
            ("answer has 2 words, 1 explanations", Box::new(|w| w.answer.as_mut().unwrap().recorded.truncate(1))),
            ("shows word 2", Box::new(|w| w.answer.as_mut().unwrap().shown = 2)),
            ("answer word 1: its maps hold 3", Box::new(|w| w.answer.as_mut().unwrap().recorded[1].patch_scores.truncate(3))),
        ];
        for (want, spoil) in cases {
            let mut w = full();
            spoil(&mut w);
            let err = decode(&encode(&Recorded { whatif: Some(w), ..sample() })).unwrap_err();
            assert!(err.starts_with("the link is damaged: ") && err.contains(want), "{err} (wanted {want})");
        }
        // A crafted huge number in a patching cell is an infinity: refused.
        let mut json = serde_json::to_value(Recorded { whatif: Some(full()), ..sample() }).unwrap();
        json["whatif"]["patching"]["patching"]["heads"][0][1] = serde_json::json!(1e300);
        let err = decode(&crate::share::fragment_of_json(json.to_string().as_bytes())).unwrap_err();
        assert!(err.contains("patching holds a non-finite number (inf)"), "{err}");
    }
}
