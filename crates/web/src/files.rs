//! Model folders as the page meets them (pure, tested natively): which file is which, where a
//! download is kept, what a server's headers say about size and hash, and whether a model fits
//! the adapter before anything large is fetched.

use serde::{Deserialize, Serialize};

pub const CONFIG: &str = "config.json";
pub const TOKENIZER: &str = "tokenizer.json";
pub const INDEX: &str = "model.safetensors.index.json";
/// Optional: without it the vision tower's usual processor is used.
pub const PREPROCESSOR: &str = "preprocessor_config.json";
pub const SINGLE: &str = "model.safetensors";

/// A real checkpoint the page offers by name: its Hub folder and what it costs, from its config
/// (crates/model/src/presets.rs), before anything is fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct HubPreset {
    /// The Hub repository, e.g. "llava-hf/llava-interleave-qwen-0.5b-hf".
    pub hub: &'static str,
    /// Its files' folder (`resolve/main/`).
    pub url: String,
    /// About the checkpoint's own size: the Hub ships these in 16-bit floats.
    pub download_bytes: u64,
    /// GPU memory at q4: the weights and an explanation's working memory (40-token prompt).
    pub q4_gpu_bytes: u64,
}

/// Every preset, smallest first (the first is the page's suggestion).
pub fn hub_presets() -> Vec<HubPreset> {
    use llava_lens_model::{Llava, WeightDType, presets::PRESETS};
    PRESETS
        .iter()
        .filter_map(|p| {
            let c = p.config().ok()?;
            Some(HubPreset {
                hub: p.hub,
                url: format!("https://huggingface.co/{}/resolve/main/", p.hub),
                download_bytes: Llava::weight_bytes_estimate(&c, WeightDType::F16).0,
                q4_gpu_bytes: Llava::weight_bytes_estimate(&c, WeightDType::Q4).0
                    + Llava::working_bytes_estimate(&c, c.sequence_length(40)),
            })
        })
        .collect()
}

impl HubPreset {
    /// The button's words.
    pub fn label(&self) -> String {
        format!(
            "{} (about {} to download, {} of GPU memory at q4)",
            self.hub,
            human_bytes(self.download_bytes),
            human_bytes(self.q4_gpu_bytes)
        )
    }
}

/// The name under which a model from `url` is kept in the browser's private storage: readable
/// (the URL's last parts) and unique (128 bits of the URL's SHA-256; the stored manifest's URL
/// is compared as well).
pub fn model_key(url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", key_tail(url))
}

/// The key the first version of the page used (a 64-bit FNV-style hash, its multiplier as that
/// version had it): models it stored stay usable (the loader looks there when the new key has
/// nothing).
pub fn legacy_model_key(url: &str) -> String {
    let h = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x1000_0000_01b3));
    format!("{}-{h:016x}", key_tail(url))
}

/// The URL's last three parts, in characters safe for a folder name, at most 60.
fn key_tail(url: &str) -> String {
    let tail: String = url
        .trim_end_matches('/')
        .rsplit('/')
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' })
        .collect();
    tail.chars().take(60).collect()
}

/// The most bytes a model's small file may have: more is not a model file (a wrong URL, a
/// hostile server), and it is refused before it fills memory or storage. The largest
/// tokenizer.json files published are about 35 MB; indexes of the largest models about 2 MB.
pub fn small_file_limit(name: &str) -> u64 {
    match name {
        TOKENIZER => 64 << 20,
        INDEX => 16 << 20,
        _ => 4 << 20,
    }
}

/// The full size from a `Content-Range: bytes a-b/total` header.
pub fn content_range_total(header: &str) -> Option<u64> {
    let rest = header.trim().strip_prefix("bytes")?.trim();
    rest.rsplit_once('/')?.1.trim().parse().ok()
}

/// The start of a `Content-Range: bytes a-b/total` header (where a resumed body begins).
pub fn content_range_start(header: &str) -> Option<u64> {
    let rest = header.trim().strip_prefix("bytes")?.trim();
    rest.split_once('-')?.0.trim().parse().ok()
}

/// A SHA-256 a server states for a file: the Hub's `X-Linked-Etag` (or an `ETag`) holding 64
/// hex digits, quotes and a weak prefix removed. Other ETags (opaque version tags) say nothing
/// about the content, so None.
pub fn sha256_from_etag(etag: &str) -> Option<String> {
    let t = etag.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}

/// The weight files of a folder, given its file names and (if present) its index's text.
pub fn shard_names(names: &[String], index_text: Option<&str>) -> Result<Vec<String>, String> {
    if let Some(text) = index_text {
        let shards = llava_lens_model::checkpoint::header::shard_files(std::path::Path::new(INDEX), text).map_err(|e| e.to_string())?;
        if let Some(missing) = shards.iter().find(|s| !names.contains(s)) {
            return Err(format!("{INDEX} lists {missing}, which is not among the chosen files"));
        }
        return Ok(shards);
    }
    if names.iter().any(|n| n == SINGLE) {
        return Ok(vec![SINGLE.into()]);
    }
    Err(format!("no {SINGLE} and no {INDEX}: this is not an HF-format Llava folder"))
}

/// What a server's answer to a request for a model file says about that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAnswer {
    /// The answer carries the file.
    Present,
    /// The file is not there; the words say how the server put it.
    Absent(String),
    /// Neither: an error status the loader reports as it is.
    Failed(u16),
}

/// Tells "this file is absent" from "this file is here" (broken or not). 404 and 410 mean absent;
/// so does an HTML page where a model file was asked for: dev servers and many static hosts
/// answer a missing path with their index page (a single-page-app fallback) or an HTML error
/// page, with status 200. No model file is HTML, so that rule costs nothing. `first_bytes` is
/// the start of the body where it is known, else empty.
pub fn file_answer(status: u16, content_type: Option<&str>, first_bytes: &[u8]) -> FileAnswer {
    match status {
        404 | 410 => FileAnswer::Absent(format!("HTTP {status}")),
        200..=299 if content_type.is_some_and(is_html_type) => {
            FileAnswer::Absent(format!("an HTML page (HTTP {status}, {}) instead of the file", content_type.unwrap_or_default().trim()))
        }
        // Some hosts type a fallback page by the path asked for (JSON for a .json path).
        200..=299 if looks_like_html(first_bytes) => FileAnswer::Absent(format!("an HTML page (HTTP {status}) instead of the file")),
        200..=299 => FileAnswer::Present,
        s => FileAnswer::Failed(s),
    }
}

/// `text/html` or `application/xhtml+xml`, whatever the parameters and case.
fn is_html_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "text/html" || media == "application/xhtml+xml"
}

/// Whether bytes start like an HTML document (after a UTF-8 byte-order mark and white space).
/// Neither JSON nor safetensors can start this way: JSON starts with a value, a safetensors file
/// with a little-endian header length that these bytes would make absurdly large.
pub fn looks_like_html(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let head: Vec<u8> = b[start..b.len().min(start + 16)].to_ascii_lowercase();
    [&b"<!doctype html"[..], b"<html", b"<head", b"<!--"].iter().any(|p| head.starts_with(p))
}

/// A downloaded (or partly downloaded) file in the browser's storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    /// Size the server announced.
    pub bytes: u64,
    /// SHA-256 of the complete file (computed while downloading), hex.
    pub sha256: Option<String>,
    pub complete: bool,
}

/// What the storage keeps about one model (its manifest.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    pub key: String,
    pub url: String,
    pub files: Vec<StoredFile>,
    /// Listed from the folder because its manifest is missing or unreadable: the files are
    /// shown (names and sizes, none complete) so the space can be seen and freed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub damaged: bool,
}

impl StoredModel {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
    pub fn complete(&self) -> bool {
        !self.damaged && !self.files.is_empty() && self.files.iter().all(|f| f.complete)
    }

    /// A stored manifest read back: its text parsed, and accepted only for the key and URL it
    /// was asked for (a damaged or foreign manifest is never trusted).
    pub fn parse(text: &str, key: &str, url: Option<&str>) -> Option<StoredModel> {
        let m: StoredModel = serde_json::from_str(text).ok()?;
        (m.key == key && !m.damaged && url.is_none_or(|u| u == m.url)).then_some(m)
    }
    pub fn file(&self, name: &str) -> Option<&StoredFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// What loading a model will take, shown before a large download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub model: String,
    pub dtype: String,
    /// Bytes still to fetch (0 when stored or local).
    pub download_bytes: u64,
    /// Bytes of all weight files.
    pub file_bytes: u64,
    /// GPU bytes of the weights in `dtype` (what the load will report).
    pub weight_bytes: u64,
    /// A rough bound on the GPU memory an explanation needs besides the weights.
    pub working_bytes: u64,
    pub largest_buffer: u64,
    /// The adapter's largest buffer and storage binding.
    pub max_buffer: u64,
    pub adapter: String,
    /// Why the model cannot run here (None: it fits the adapter's limits).
    pub problem: Option<String>,
}

/// The reason a model cannot run on an adapter, if any. WebGPU does not say how much memory an
/// adapter has, so only the per-buffer limit is a hard check; the total is shown, and an
/// out-of-memory error during the upload is caught and reported.
pub fn fit_problem(largest_buffer: u64, max_buffer: u64, dtype: &str) -> Option<String> {
    (largest_buffer > max_buffer).then(|| {
        let hint = if dtype == "q4" { "" } else { "; q4 weights need less" };
        format!(
            "the largest weight matrix needs a {} buffer but this GPU allows {} per buffer{hint}",
            human_bytes(largest_buffer),
            human_bytes(max_buffer)
        )
    })
}

/// Bytes for people: 6.3 MB, 13.5 GB.
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_every_supported_checkpoint_smallest_first_with_their_costs() {
        let p = hub_presets();
        assert_eq!(p.len(), llava_lens_model::presets::PRESETS.len(), "every preset's config parses");
        assert_eq!(p[0].hub, "llava-hf/llava-interleave-qwen-0.5b-hf");
        assert_eq!(p[0].url, "https://huggingface.co/llava-hf/llava-interleave-qwen-0.5b-hf/resolve/main/");
        assert!(p.windows(2).all(|w| w[0].download_bytes <= w[1].download_bytes + 2_000_000_000), "roughly smallest first");
        assert_eq!(p[0].label(), "llava-hf/llava-interleave-qwen-0.5b-hf (about 1.7 GB to download, 1.8 GB of GPU memory at q4)");
        assert!(p.iter().any(|x| x.hub == "llava-hf/llava-1.5-7b-hf"), "the paper's model stays offered");
    }

    #[test]
    fn keys_are_readable_unique_and_safe() {
        let a = model_key("https://huggingface.co/llava-hf/llava-1.5-7b-hf/resolve/main/");
        assert!(a.starts_with("llava-1.5-7b-hf-resolve-main-"), "{a}");
        // 128 bits of SHA-256("https://huggingface.co/llava-hf/llava-1.5-7b-hf/resolve/main/").
        assert_eq!(a.len(), "llava-1.5-7b-hf-resolve-main-".len() + 32);
        assert_ne!(a, model_key("https://example.org/llava-hf/llava-1.5-7b-hf/resolve/main/"));
        let odd = model_key("http://127.0.0.1:8080/a b/?x=<y>");
        assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{odd}");
        assert_eq!(model_key("abc").rsplit('-').next().unwrap(), "ba7816bf8f01cfea414140de5dae2223");
        // Pinned: models stored by the first version are found under exactly this key.
        assert_eq!(legacy_model_key("abc"), "abc-1922bb190541574b");
    }

    #[test]
    fn stored_manifests_are_trusted_only_for_their_key_and_url() {
        let m = StoredModel { key: "k".into(), url: "https://a/".into(), files: vec![], damaged: false };
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("damaged"), "{text}");
        assert_eq!(StoredModel::parse(&text, "k", Some("https://a/")), Some(m.clone()));
        assert_eq!(StoredModel::parse(&text, "k", None), Some(m));
        assert_eq!(StoredModel::parse(&text, "k", Some("https://b/")), None, "another URL under the same key");
        assert_eq!(StoredModel::parse(&text, "other", None), None);
        assert_eq!(StoredModel::parse("", "k", None), None, "an empty (cut) manifest");
        assert_eq!(StoredModel::parse(&text[..text.len() / 2], "k", None), None);
        assert_eq!(small_file_limit(TOKENIZER), 64 << 20);
        assert_eq!(small_file_limit(CONFIG), 4 << 20);
    }

    #[test]
    fn ranges_and_hashes_from_headers() {
        assert_eq!(content_range_total("bytes 100-199/1000"), Some(1000));
        assert_eq!(content_range_start("bytes 100-199/1000"), Some(100));
        assert_eq!(content_range_total("bytes */1000"), Some(1000));
        assert_eq!(content_range_total("bytes 0-1/*"), None);
        assert_eq!(content_range_total("items 0-1/2"), None);
        let h = "a".repeat(64);
        assert_eq!(sha256_from_etag(&format!("\"{h}\"")), Some(h.clone()));
        assert_eq!(sha256_from_etag(&format!("W/\"{}\"", h.to_uppercase())), Some(h));
        assert_eq!(sha256_from_etag("\"5e3a-17f\""), None);
    }

    #[test]
    fn folder_layouts() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shard_names(&names(&["config.json", "model.safetensors"]), None).unwrap(), ["model.safetensors"]);
        let index = r#"{"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors"}}"#;
        let all = names(&["config.json", INDEX, "m-1.safetensors", "m-2.safetensors"]);
        assert_eq!(shard_names(&all, Some(index)).unwrap(), ["m-1.safetensors", "m-2.safetensors"]);
        let e = shard_names(&all[..3], Some(index)).unwrap_err();
        assert!(e.contains("m-2.safetensors"), "{e}");
        assert!(shard_names(&names(&["photo.jpg"]), None).unwrap_err().contains("not an HF-format"));
    }

    #[test]
    fn absent_files_are_told_from_broken_ones() {
        use FileAnswer::*;
        assert_eq!(file_answer(404, Some("text/plain"), b"not found"), Absent("HTTP 404".into()));
        assert_eq!(file_answer(410, None, b""), Absent("HTTP 410".into()));
        // trunk serve's fallback, an SPA host's index page, an HTML 404 page with status 200.
        for ct in ["text/html", "text/html; charset=utf-8", "TEXT/HTML;charset=UTF-8", " application/xhtml+xml "] {
            assert!(matches!(file_answer(200, Some(ct), b"{}"), Absent(w) if w.contains("HTML page")), "{ct}");
        }
        assert!(matches!(file_answer(206, Some("text/html"), b""), Absent(_)));
        // No Content-Type, or one taken from the path asked for: the body says it.
        for body in [&b"<!DOCTYPE html><html>"[..], b"\xef\xbb\xbf\n  <html lang=en>", b"<!-- x -->", b"<HEAD>"] {
            assert!(matches!(file_answer(200, None, body), Absent(_)), "{body:?}");
        }
        // A damaged JSON file served as JSON is present (its parse error is reported), and so is
        // JSON or weights whatever the type says, unless it says HTML.
        assert_eq!(file_answer(200, Some("application/json"), b"{\"weight_map\": {,}"), Present);
        assert!(matches!(file_answer(200, Some("application/json"), b"<!doctype html>"), Absent(_)));
        assert_eq!(file_answer(200, None, b"{\"a\": 1}"), Present);
        assert_eq!(file_answer(200, Some("application/octet-stream"), &[0x40, 0, 0, 0, 0, 0, 0, 0]), Present);
        assert_eq!(file_answer(200, Some("text/plain"), b""), Present);
        assert_eq!(file_answer(500, Some("text/html"), b"<html>"), Failed(500));
        assert_eq!(file_answer(403, None, b""), Failed(403));
    }

    #[test]
    fn fit_and_sizes() {
        assert_eq!(fit_problem(100, 200, "f32"), None);
        let p = fit_problem(525_000_000, 268_435_456, "f32").unwrap();
        assert!(p.contains("525.0 MB") && p.contains("268.4 MB") && p.contains("q4"), "{p}");
        assert!(!fit_problem(3, 2, "q4").unwrap().contains("q4 weights"));
        assert_eq!(human_bytes(6_300_000), "6.3 MB");
        assert_eq!(human_bytes(999), "999 B");
    }

    #[test]
    fn a_manifest_knows_when_it_is_complete() {
        let f = |c| StoredFile { name: "m".into(), bytes: 10, sha256: None, complete: c };
        let m = StoredModel { key: "k".into(), url: "u".into(), files: vec![f(true), f(false)], damaged: false };
        assert!(!m.complete());
        assert_eq!(m.bytes(), 20);
        let done = StoredModel { files: vec![f(true)], ..m };
        assert!(done.complete());
        assert!(!StoredModel { files: vec![], ..done.clone() }.complete());
        assert!(!StoredModel { damaged: true, ..done }.complete());
    }
}
