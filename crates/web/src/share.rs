//! Share links: a recorded explanation carried in the URL fragment, so the page can draw it
//! without the model (and without sending anything to a server: fragments never leave the
//! browser). Format: `#x=1.<base64url(deflate(json))>`.

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
}

mod b64 {
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
    let json = serde_json::to_vec(r).expect("plain data serialises");
    let packed = miniz_oxide::deflate::compress_to_vec(&json, 9);
    format!("x={FRAGMENT_VERSION}.{}", URL_SAFE_NO_PAD.encode(packed))
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
    let cells = r.grid * r.grid;
    if r.grid == 0 || r.patch_scores.len() != cells || r.baseline_map.len() != cells {
        return Err(format!("the link's maps do not match its {0}x{0} grid", r.grid));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recorded {
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
            crop_jpeg: vec![0xFF, 0xD8, 1, 2, 3],
        }
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
        // Truncated links (a chat client cut the URL) fail cleanly, never panic.
        let f = encode(&sample());
        for cut in (3..f.len()).step_by(7) {
            let _ = decode(&f[..cut]);
        }
    }
}
