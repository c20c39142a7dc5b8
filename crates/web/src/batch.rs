//! A `llava-lens batch` output opened in the page (docs/BATCH.md): its lines as explanations
//! with their examples, filtered by tag and sorted by a score, each shown with the same views as
//! a single explanation over its image from a picked folder. Pure (tested natively); the page's
//! panel is crates/web/src/ui/batch.rs.

use llava_lens_explain::Explanation;
use llava_lens_explain::explanation::Crop;
use serde::Deserialize;

use crate::share::Recorded;

/// The example fields a batch line carries (what the list shows and the views need).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Example {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub answer_prefix: String,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One line: its id and example, and the explanation or the error the batch recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub example: Example,
    pub outcome: Result<Box<Explanation>, String>,
}

impl Entry {
    /// The best head's score (nats), for sorting; None for an error line.
    pub fn best_score(&self) -> Option<f32> {
        self.outcome.as_ref().ok().map(|e| e.best_head.score)
    }

    /// The model's top next token, without the word-start mark.
    pub fn answer_given(&self) -> Option<String> {
        let e = self.outcome.as_ref().ok()?;
        Some(e.top.first()?.text.as_deref()?.trim_start_matches(['▁', 'Ġ']).to_string())
    }

    /// Whether the top token is the expected answer (None without an expected answer).
    pub fn correct(&self) -> Option<bool> {
        let want = self.example.answer.as_deref()?;
        Some(self.answer_given()?.trim().eq_ignore_ascii_case(want.trim()))
    }

    /// What the list shows of this line: a few strings, so that re-drawing the list (a new tag
    /// or order) copies no explanation.
    pub fn row(&self) -> Row {
        let (answer, head, score) = match &self.outcome {
            Err(e) => (format!("error: {e}"), String::new(), String::new()),
            Ok(e) => {
                let a = self.answer_given().unwrap_or_default();
                let answer = match self.correct() {
                    Some(true) => format!("{a} (right)"),
                    Some(false) => format!("{a} (expected {})", self.example.answer.clone().unwrap_or_default()),
                    None => a,
                };
                (answer, format!("{}.{}", e.best_head.layer, e.best_head.head), format!("{:+.4}", e.best_head.score))
            }
        };
        Row { id: self.id.clone(), tags: self.example.tags.join(", "), answer, head, score, failed: self.outcome.is_err() }
    }
}

/// One line of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub tags: String,
    pub answer: String,
    pub head: String,
    pub score: String,
    pub failed: bool,
}

#[derive(Deserialize)]
struct Head {
    id: String,
    #[serde(default)]
    example: Option<Example>,
    #[serde(default)]
    error: Option<String>,
}

/// The lines of a batch output (`name` for messages). A line that is not JSON or has no id is
/// an error naming it: the file is not a batch output.
pub fn parse(text: &str, name: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: String| format!("{name}, line {}: {what}; expected a line of `llava-lens batch`", n + 1);
        let head: Head = serde_json::from_str(line).map_err(|e| bad(format!("{e}")))?;
        let outcome = match head.error {
            Some(e) => Err(e),
            None => Ok(Box::new(Explanation::from_json(line).map_err(|e| bad(format!("not an explanation ({e})")))?)),
        };
        out.push(Entry { id: head.id, example: head.example.unwrap_or_default(), outcome });
    }
    if out.is_empty() {
        return Err(format!("{name} holds no lines"));
    }
    Ok(out)
}

/// How the list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// As in the file.
    File,
    /// Best head's score, highest first (errors last).
    BestScore,
    /// Best head's score, lowest first: where the method finds least (errors last).
    BestScoreLow,
    /// Wrong answers first, then by file order.
    WrongFirst,
}

impl Order {
    pub fn parse(s: &str) -> Order {
        match s {
            "best" => Order::BestScore,
            "best-low" => Order::BestScoreLow,
            "wrong" => Order::WrongFirst,
            _ => Order::File,
        }
    }
}

/// Every tag of the entries, sorted.
pub fn tags(entries: &[Entry]) -> Vec<String> {
    let mut t: Vec<String> = entries.iter().flat_map(|e| e.example.tags.iter().cloned()).collect();
    t.sort();
    t.dedup();
    t
}

/// The indices of the entries shown: those with `tag` (all when None), in `order`.
pub fn shown(entries: &[Entry], tag: Option<&str>, order: Order) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..entries.len()).filter(|&i| tag.is_none_or(|t| entries[i].example.tags.iter().any(|x| x == t))).collect();
    let score = |i: &usize| entries[*i].best_score();
    match order {
        Order::File => {}
        Order::BestScore | Order::BestScoreLow => idx.sort_by(|a, b| match (score(a), score(b)) {
            (Some(x), Some(y)) => {
                let o = if order == Order::BestScore { y.total_cmp(&x) } else { x.total_cmp(&y) };
                o.then(a.cmp(b))
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }),
        Order::WrongFirst => idx.sort_by_key(|&i| (entries[i].correct() != Some(false), i)),
    }
    idx
}

/// Which of the picked files (their paths inside the picked folder, e.g. "scenes/000003.png")
/// is the line's image (as the examples file wrote it, relative to that file: "000003.png",
/// "images/a.jpg"): the one whose path ends with the most of the image path's components.
pub fn find_image(files: &[String], image: &str) -> Option<usize> {
    let want: Vec<&str> = image.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").collect();
    let matched = |f: &String| f.split(['/', '\\']).rev().zip(want.iter().rev()).take_while(|(a, b)| a == *b).count();
    files
        .iter()
        .enumerate()
        .map(|(i, f)| (matched(f), i))
        .filter(|&(m, _)| m > 0)
        .max_by_key(|&(m, i)| (m, std::cmp::Reverse(i)))
        .map(|(_, i)| i)
}

/// The model's view of `image` (encoded bytes): the crop box the batch recorded, in the image's
/// pixels (it may reach past the edges: padding, drawn gray), scaled to `side` pixels square, as
/// JPEG for [`Recorded::crop_jpeg`].
pub fn model_view(image: &[u8], crop: &Crop, side: u32) -> Result<Vec<u8>, String> {
    let img = image::load_from_memory(image).map_err(|e| format!("the image does not decode ({e})"))?.to_rgb8();
    let (w, h) = img.dimensions();
    let mut view = image::RgbImage::from_pixel(side, side, image::Rgb([128, 128, 128]));
    for (x, y, p) in view.enumerate_pixels_mut() {
        // The source pixel under the view pixel's centre (nearest: the map is drawn over it).
        let sx = crop.x + (x as f32 + 0.5) / side as f32 * crop.width;
        let sy = crop.y + (y as f32 + 0.5) / side as f32 * crop.height;
        if sx >= 0.0 && sy >= 0.0 && (sx as u32) < w && (sy as u32) < h {
            *p = *img.get_pixel(sx as u32, sy as u32);
        }
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&view).map_err(|e| format!("encoding the view: {e}"))?;
    Ok(jpeg)
}

/// The page's record of an explained line, with its view of the image.
pub fn recorded(entry: &Entry, crop_jpeg: Vec<u8>) -> Option<Recorded> {
    let e = entry.outcome.as_ref().ok()?;
    let text = |t: &llava_lens_explain::explanation::TokenInfo| t.text.clone().unwrap_or_else(|| t.id.to_string());
    Some(Recorded {
        model: e.model.clone(),
        question: entry.example.question.clone(),
        answer_prefix: entry.example.answer_prefix.clone(),
        target: text(&e.target),
        target_log_prob: e.target.log_prob,
        top: e.top.iter().map(|t| (text(t), t.log_prob.exp())).collect(),
        grid: e.grid,
        patch_scores: e.patch_scores.clone(),
        baseline_map: e.baseline_map.clone(),
        head_scores: e.head_scores.clone(),
        best_head: (e.best_head.layer, e.best_head.head),
        contrast: e.contrast.as_ref().map(text),
        crop_jpeg,
        whatif: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch line: a committed explanation with the batch's id and example, its best score set.
    fn line(id: &str, tags: &[&str], score: f32, top: &str, answer: &str) -> String {
        let text = include_str!("../../../tests/data/explanations/demo-scene-rich.json");
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["id"] = id.into();
        v["example"] =
            serde_json::json!({"image": format!("{id}.png"), "question": "Q?", "answer_prefix": "It is", "answer": answer, "tags": tags});
        v["best_head"]["score"] = score.into();
        v["top"][0]["text"] = format!("▁{top}").into();
        v.to_string()
    }

    fn entries() -> Vec<Entry> {
        let text = [
            line("a", &["circle"], 0.5, "red", "red"),
            r#"{"id": "b", "example": {"question": "Q?", "tags": ["square"]}, "error": "image missing"}"#.to_string(),
            line("c", &["square"], 2.0, "blue", "green"),
            line("d", &["circle", "present"], -1.0, "Green", "green"),
        ]
        .join("\n\n");
        parse(&text, "out.jsonl").unwrap()
    }

    #[test]
    fn lines_become_entries_and_errors_stay_visible() {
        let e = entries();
        assert_eq!(e.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(e[1].outcome, Err("image missing".into()));
        assert_eq!((e[0].correct(), e[2].correct(), e[3].correct(), e[1].correct()), (Some(true), Some(false), Some(true), None));
        assert_eq!(tags(&e), ["circle", "present", "square"]);
        let (right, wrong, failed) = (e[0].row(), e[2].row(), e[1].row());
        assert_eq!((right.answer.as_str(), right.score.as_str(), right.tags.as_str()), ("red (right)", "+0.5000", "circle"));
        assert_eq!(wrong.answer, "blue (expected green)");
        assert!(failed.failed && failed.answer == "error: image missing" && failed.head.is_empty());
        let bad = parse("{\"id\": \"a\"}\n{not json", "x.jsonl").unwrap_err();
        assert!(bad.contains("x.jsonl, line 1: not an explanation"), "{bad}");
        assert!(parse("\n", "empty.jsonl").unwrap_err().contains("holds no lines"));
    }

    #[test]
    fn filters_and_orders() {
        let e = entries();
        assert_eq!(shown(&e, None, Order::File), [0, 1, 2, 3]);
        assert_eq!(shown(&e, None, Order::BestScore), [2, 0, 3, 1]);
        assert_eq!(shown(&e, None, Order::BestScoreLow), [3, 0, 2, 1]);
        assert_eq!(shown(&e, None, Order::WrongFirst), [2, 0, 1, 3]);
        assert_eq!(shown(&e, Some("circle"), Order::BestScore), [0, 3]);
        assert_eq!(shown(&e, Some("none"), Order::File), Vec::<usize>::new());
    }

    #[test]
    fn images_are_found_by_their_longest_path_suffix() {
        let files: Vec<String> = ["run/a/x.png", "run/b/x.png", "run/y.png"].map(String::from).to_vec();
        assert_eq!(find_image(&files, "b/x.png"), Some(1));
        assert_eq!(find_image(&files, "./y.png"), Some(2));
        assert_eq!(find_image(&files, "x.png"), Some(0), "a tie goes to the first");
        assert_eq!(find_image(&files, "z.png"), None);
    }

    #[test]
    fn the_view_is_the_crop_box_and_records_the_line() {
        // 4x2 image: left half red, right half blue; the model saw the right square.
        let mut img = image::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 0]));
        for y in 0..2 {
            for x in 2..4 {
                img.put_pixel(x, y, image::Rgb([0, 0, 255]));
            }
        }
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let view = model_view(&png, &Crop { x: 2.0, y: 0.0, width: 2.0, height: 2.0 }, 16).unwrap();
        let v = image::load_from_memory(&view).unwrap().to_rgb8();
        assert_eq!(v.dimensions(), (16, 16));
        let p = v.get_pixel(8, 8).0;
        assert!(p[2] > 200 && p[0] < 60, "blue: {p:?}");
        // Padded: past the left edge is gray.
        let padded =
            image::load_from_memory(&model_view(&png, &Crop { x: -4.0, y: -3.0, width: 8.0, height: 8.0 }, 16).unwrap()).unwrap().to_rgb8();
        let g = padded.get_pixel(1, 1).0;
        assert!(g.iter().all(|&c| (110..150).contains(&c)), "gray: {g:?}");
        assert!(model_view(b"not an image", &Crop { x: 0.0, y: 0.0, width: 1.0, height: 1.0 }, 4).unwrap_err().contains("does not decode"));

        let e = entries();
        let r = recorded(&e[2], view.clone()).unwrap();
        let x = e[2].outcome.as_ref().unwrap();
        assert_eq!(
            (r.question.as_str(), r.best_head, r.grid, r.patch_scores.len()),
            ("Q?", (x.best_head.layer, x.best_head.head), x.grid, x.grid * x.grid)
        );
        assert_eq!(r.top[0].0, "▁blue");
        assert!(recorded(&e[1], view).is_none(), "an error line has nothing to show");
    }
}
