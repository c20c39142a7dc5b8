//! Share links: a recorded explanation carried in the URL fragment, so the page can draw it
//! without the model (and without sending anything to a server: fragments never leave the
//! browser). Format: `#x=1.<base64url(deflate(json))>`.

pub mod whatif;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Version of the fragment format; a link from a newer page is refused with a clear message.
pub const FRAGMENT_VERSION: u32 = 1;

/// Everything the page needs to draw an explanation again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub model: String,
    pub question: String,
    pub answer_prefix: String,
    /// The explained token's text and log-probability.
    pub target: String,
    pub target_log_prob: f32,
    /// The model's top-5 next tokens (text, probability).
    pub top: Vec<(String, f32)>,
    pub grid: usize,
    /// The best head's score per patch (nats), row-major.
    pub patch_scores: Vec<f32>,
    /// Mean attention of the last position per patch.
    pub baseline_map: Vec<f32>,
    /// Head scores [layer][head] (nats).
    pub head_scores: Vec<Vec<f32>>,
    pub best_head: (usize, usize),
    /// The contrast token of a "target rather than contrast" explanation.
    #[serde(default)]
    pub contrast: Option<String>,
    /// The model's view of the image (JPEG).
    #[serde(with = "b64")]
    pub crop_jpeg: Vec<u8>,
    /// "What if…" results on the same input, when the page had any (links made before they
    /// existed open without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatif: Option<whatif::SharedWhatIf>,
}

impl Recorded {
    /// What the page draws of explanation `e` (its tokens named), with the model's view of the
    /// picture as `crop_jpeg`.
    pub fn of(e: &llava_lens_explain::Explanation, model: &str, question: &str, answer_prefix: &str, crop_jpeg: Vec<u8>) -> Recorded {
        Recorded {
            model: model.into(),
            question: question.into(),
            answer_prefix: answer_prefix.into(),
            target: e.target.text.clone().unwrap_or_default(),
            target_log_prob: e.target.log_prob,
            top: e.top.iter().map(|t| (t.text.clone().unwrap_or_default(), t.log_prob.exp())).collect(),
            grid: e.grid,
            patch_scores: e.patch_scores.clone(),
            baseline_map: e.baseline_map.clone(),
            head_scores: e.head_scores.clone(),
            best_head: (e.best_head.layer, e.best_head.head),
            contrast: e.contrast.as_ref().and_then(|c| c.text.clone()),
            crop_jpeg,
            whatif: None,
        }
    }
}

pub(crate) mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The fragment (without '#') for a recorded explanation.
pub fn encode(r: &Recorded) -> String {
    // Plain data (strings, numbers, vectors) always serialises.
    fragment_of_json(&serde_json::to_vec(r).expect("plain data serialises"))
}

/// The fragment of any JSON bytes, packed as [`encode`] packs an explanation (fuzzing reaches
/// the checks behind the decoder through it).
pub fn fragment_of_json(json: &[u8]) -> String {
    format!("x={FRAGMENT_VERSION}.{}", URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(json, 9)))
}

/// A recorded explanation from a fragment (with or without '#'); errors say what is wrong.
pub fn decode(fragment: &str) -> Result<Recorded, String> {
    let body = fragment.trim_start_matches('#');
    let body = body.strip_prefix("x=").ok_or("the link does not carry an explanation (expected #x=...)")?;
    let (version, data) = body.split_once('.').ok_or("the explanation in the link is malformed (no version)")?;
    let version: u32 = version.parse().map_err(|_| format!("the link's format version {version:?} is not a number"))?;
    if version != FRAGMENT_VERSION {
        return Err(format!("the link uses format version {version}; this page reads version {FRAGMENT_VERSION}"));
    }
    let packed = URL_SAFE_NO_PAD.decode(data).map_err(|e| format!("the link is damaged (base64: {e})"))?;
    // Cap the inflated size: a crafted link must not exhaust memory.
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, 8 << 20)
        .map_err(|e| format!("the link is damaged (deflate: {e:?})"))?;
    let r: Recorded = serde_json::from_slice(&json).map_err(|e| format!("the link's explanation is not valid: {e}"))?;
    check(&r).map_err(|e| format!("the link is damaged: {e}"))?;
    Ok(r)
}

/// The most top tokens a link may carry.
pub(crate) const MAX_TOP: usize = 100;

/// Everything the page reads from a decoded link, checked before anything is drawn: the grid
/// and head grid within the caps a model's config has (crates/model/src/config/limits.rs),
/// every array the length the grid says, every number finite, the best head inside the head
/// grid, and the recorded image a square of at least a pixel a patch (by its header).
pub fn check(r: &Recorded) -> Result<(), String> {
    use llava_lens_model::config::limits::{GRID, HEADS, TEXT_LAYERS};
    if r.grid == 0 || r.grid > GRID {
        return Err(format!("its grid is {0} x {0}; 1 to {GRID} patches a side are possible", r.grid));
    }
    let cells = r.grid * r.grid;
    if r.patch_scores.len() != cells || r.baseline_map.len() != cells {
        return Err(format!(
            "its maps hold {} and {} values, not the {cells} of its {}x{} grid",
            r.patch_scores.len(),
            r.baseline_map.len(),
            r.grid,
            r.grid
        ));
    }
    let heads = r.head_scores.first().map_or(0, Vec::len);
    if r.head_scores.is_empty() || r.head_scores.len() > TEXT_LAYERS || heads == 0 || heads > HEADS {
        return Err(format!("its head grid is {} layers of {heads} heads", r.head_scores.len()));
    }
    if let Some(l) = r.head_scores.iter().position(|row| row.len() != heads) {
        return Err(format!("layer {l} of its head grid has {} heads, layer 0 has {heads}", r.head_scores[l].len()));
    }
    if r.best_head.0 >= r.head_scores.len() || r.best_head.1 >= heads {
        return Err(format!("its best head {}.{} is outside its head grid", r.best_head.0, r.best_head.1));
    }
    if r.top.is_empty() || r.top.len() > MAX_TOP {
        return Err(format!("it lists {} top tokens (1 to {MAX_TOP})", r.top.len()));
    }
    let numbers = std::iter::once(r.target_log_prob)
        .chain(r.top.iter().map(|t| t.1))
        .chain(r.patch_scores.iter().copied())
        .chain(r.baseline_map.iter().copied())
        .chain(r.head_scores.iter().flatten().copied());
    if let Some(v) = numbers.into_iter().find(|v| !v.is_finite()) {
        return Err(format!("it holds a non-finite number ({v})"));
    }
    check_image(&r.crop_jpeg, r.grid)?;
    match &r.whatif {
        Some(w) => whatif::check(w, r),
        None => Ok(()),
    }
}

/// A recorded image: it decodes (by its header) to a square of `min_side` to
/// `render::MAX_DRAW_SIDE` pixels a side.
pub(crate) fn check_image(bytes: &[u8], min_side: usize) -> Result<(), String> {
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())
        .and_then(|i| i.into_dimensions().map_err(|e| e.to_string()))
        .map_err(|e| format!("its image does not decode ({e})"))?;
    let max = llava_lens_explain::render::MAX_DRAW_SIDE;
    if w != h || (w as usize) < min_side || w > max {
        return Err(format!("its image is {w} x {h}; a square of {min_side} to {max} pixels a side is needed for its grid"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Recorded {
        Recorded {
            model: "models/scenes-tiny".into(),
            question: "What is the color of the star?".into(),
            answer_prefix: "The color of the star is".into(),
            target: "▁red".into(),
            target_log_prob: -0.01,
            top: vec![("▁red".into(), 0.99), ("▁blue".into(), 0.004)],
            grid: 2,
            patch_scores: vec![0.5, -0.25, 0.0, 1.0],
            baseline_map: vec![0.1, 0.2, 0.3, 0.4],
            head_scores: vec![vec![0.1, 0.2], vec![0.3, 0.4]],
            best_head: (1, 1),
            contrast: None,
            crop_jpeg: jpeg(8, 8),
            whatif: None,
        }
    }

    pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]))
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_and_is_url_safe() {
        let f = encode(&sample());
        assert!(f.chars().all(|c| c.is_ascii_alphanumeric() || "=._-".contains(c)), "{f}");
        assert_eq!(decode(&f).unwrap(), sample());
        assert_eq!(decode(&format!("#{f}")).unwrap(), sample());
    }

    #[test]
    fn contrast_explanations_round_trip_and_links_without_contrast_still_open() {
        let r = Recorded { contrast: Some("▁none".into()), ..sample() };
        assert_eq!(decode(&encode(&r)).unwrap(), r);
        // A link recorded before the contrast field existed.
        let mut json = serde_json::to_value(sample()).unwrap();
        json.as_object_mut().unwrap().remove("contrast");
        let packed = miniz_oxide::deflate::compress_to_vec(json.to_string().as_bytes(), 9);
        let old = format!("x=1.{}", URL_SAFE_NO_PAD.encode(packed));
        assert_eq!(decode(&old).unwrap(), sample());
    }

    #[test]
    fn bad_links_get_clear_errors() {
        assert!(decode("#foo").unwrap_err().contains("expected #x="));
        assert!(decode("#x=2.AAAA").unwrap_err().contains("version 2"));
        assert!(decode("#x=1.!!!").unwrap_err().contains("base64"));
        assert!(decode("#x=1.AAAA").unwrap_err().contains("damaged"));
        let mut r = sample();
        r.patch_scores.pop();
        assert!(decode(&encode(&r)).unwrap_err().contains("2x2 grid"));
        let mut r = sample();
        r.baseline_map.push(0.5);
        assert!(decode(&encode(&r)).unwrap_err().contains("2x2 grid"));
        // Truncated links (a chat client cut the URL) fail cleanly, never panic.
        let f = encode(&sample());
        for cut in (3..f.len()).step_by(7) {
            let _ = decode(&f[..cut]);
        }
    }

    #[test]
    fn every_inconsistent_link_is_refused_before_anything_is_drawn() {
        type Spoil = Box<dyn Fn(&mut Recorded)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("grid is 0 x 0", Box::new(|r| r.grid = 0)),
            // grid * grid wraps to 0 on wasm32 for 65536; the cap refuses it first.
            ("grid is 65536 x 65536", Box::new(|r| r.grid = 65536)),
            ("not the 4 of its 2x2 grid", Box::new(|r| r.patch_scores.push(1.0))),
            ("not the 4 of its 2x2 grid", Box::new(|r| r.baseline_map.truncate(3))),
            ("head grid is 0 layers", Box::new(|r| r.head_scores.clear())),
            ("layer 1 of its head grid has 3 heads", Box::new(|r| r.head_scores[1].push(0.0))),
            ("head grid is 2000 layers", Box::new(|r| r.head_scores = vec![vec![0.0; 2]; 2000])),
            ("best head 2.0 is outside", Box::new(|r| r.best_head = (2, 0))),
            ("best head 0.5 is outside", Box::new(|r| r.best_head = (0, 5))),
            ("0 top tokens", Box::new(|r| r.top.clear())),
            ("its image is 1 x 1", Box::new(|r| r.crop_jpeg = jpeg(1, 1))),
            ("its image is 16 x 8", Box::new(|r| r.crop_jpeg = jpeg(16, 8))),
            ("its image does not decode", Box::new(|r| r.crop_jpeg = vec![0xFF, 0xD8, 1, 2, 3])),
        ];
        for (want, spoil) in cases {
            let mut r = sample();
            spoil(&mut r);
            let err = decode(&encode(&r)).unwrap_err();
            assert!(err.starts_with("the link is damaged: ") && err.contains(want), "{err} (wanted {want})");
        }
        // JSON has no NaN, but 1e300 parses as an f32 infinity: any number may be one.
        let craft = |path: &[&str], v: serde_json::Value| {
            let mut json = serde_json::to_value(sample()).unwrap();
            let mut at = &mut json;
            for p in path {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            *at = v;
            let packed = miniz_oxide::deflate::compress_to_vec(json.to_string().as_bytes(), 9);
            decode(&format!("x=1.{}", URL_SAFE_NO_PAD.encode(packed)))
        };
        let huge = serde_json::json!(1e300);
        for path in
            [&["patch_scores", "3"][..], &["baseline_map", "0"], &["head_scores", "0", "1"], &["target_log_prob"], &["top", "1", "1"]]
        {
            let err = craft(path, huge.clone()).unwrap_err();
            assert!(err.contains("non-finite number (inf)"), "{path:?}: {err}");
        }
        assert!(craft(&["patch_scores", "3"], serde_json::Value::Null).unwrap_err().contains("not valid"));
        // A grid of 24 over a 1-pixel image: refused here, where it used to underflow in render.
        let mut r = sample();
        r.grid = 24;
        r.patch_scores = vec![0.0; 576];
        r.baseline_map = vec![0.0; 576];
        r.crop_jpeg = jpeg(1, 1);
        assert!(decode(&encode(&r)).unwrap_err().contains("its image is 1 x 1"));
    }
}
