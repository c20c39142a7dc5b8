//! Messages between the page and the worker: JSON strings through `postMessage`, one enum each
//! way, so both sides agree by construction.

use llava_lens_explain::Explanation;
use llava_lens_explain::faithfulness::{Faithfulness, Operator};
use llava_lens_explain::intervene::Outcome;
use llava_lens_explain::intervene::ablation::{Ablation, HeadAblation};
use llava_lens_explain::intervene::patching::Patching;
use llava_lens_explain::intervene::zoom::Zoomed;
use llava_lens_model::WeightDType;
use serde::{Deserialize, Serialize};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ModelSource {
    /// An HF-format folder served at `url` (config.json, tokenizer.json, model.safetensors or
    /// shards with model.safetensors.index.json); downloads are kept in the browser's storage.
    Url { url: String },
    /// Files the user chose or dropped; the `File` objects travel beside the JSON message.
    Files,
}

/// Page -> worker. Sent as JSON text; with [`ModelSource::Files`], as an array whose first
/// element is the JSON and the rest the files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// What loading would take (sizes, GPU memory, whether it fits), without downloading weights.
    Inspect { source: ModelSource, dtype: WeightDType },
    /// Load a model with weights in `dtype`, streamed into the GPU.
    Load { source: ModelSource, dtype: WeightDType },
    /// List the models kept in the browser's storage.
    ListStored,
    /// Forget a stored model (its key from [`Response::Stored`]).
    DeleteStored { key: String },
    /// Explain the model's answer for an image (PNG/JPEG/WebP bytes, base64) and a question;
    /// `target` replaces the answer as the explained token, `contrast` asks "target rather than
    /// contrast" (both token texts, as the CLI's --target and --contrast).
    Explain {
        image_base64: String,
        question: String,
        answer_prefix: String,
        target: Option<String>,
        contrast: Option<String>,
        top_k_heads: usize,
        /// Heads whose per-patch maps are also wanted (layer, head), besides the top k.
        #[serde(default)]
        head_maps: Vec<(usize, usize)>,
    },
    /// "How faithful is this map?": deletion and insertion curves of p(target) for the last
    /// explanation's map, mean attention and `seeds` random orders (the CLI's
    /// `llava-lens faithfulness`).
    Faithfulness { operator: Operator, steps: usize, seeds: usize },
    /// The last explanation's input with the text after the image blind to `patches` (the
    /// CLI's `ablate --knockout-patches`).
    Knockout { patches: Vec<usize> },
    /// The last explanation's input with `heads` ablated (the CLI's `ablate --heads`).
    Ablate { heads: Vec<(usize, usize)>, mode: Ablation },
    /// Activation patching from the last explanation's input (clean) into a corrupted one: this
    /// image and question with the same answer prefix (the CLI's `patch`).
    Patch { image_base64: String, question: String, positions: PatchPositions },
    /// Generate the answer to the last explanation's input and explain every token of it (the
    /// CLI's `answer`).
    ExplainAnswer { max_tokens: usize },
    /// Crop the last explanation's picture to the map's window (`zoom` of the side) and ask again,
    /// beside `seeds` random windows (the CLI's `zoom`).
    Zoom { zoom: f32, seeds: usize },
}

/// Which residual positions activation patching patches (the CLI's `--positions`).
pub use llava_lens_explain::intervene::patching::Positions as PatchPositions;

/// Worker -> page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// The worker's wasm is running and listens.
    Ready,
    /// `stage` is one of download (bytes), upload (tensors to the GPU) or inference.
    Progress {
        stage: String,
        done: u64,
        total: u64,
    },
    Plan(crate::files::Plan),
    Stored {
        models: Vec<crate::files::StoredModel>,
        /// The browser's storage estimate (bytes used, bytes allowed), when it gives one.
        usage: Option<(u64, u64)>,
    },
    /// The GPU device was lost (driver reset, too much memory, another tab): the model is gone
    /// and must be loaded again.
    DeviceLost {
        message: String,
    },
    Loaded {
        model: String,
        adapter: String,
        weight_bytes: u64,
        /// The worker's wasm memory after the load: its peak so far (wasm memory never shrinks).
        wasm_memory_bytes: u64,
    },
    /// The explanation (the CLI's document, its tokens named) plus what the page draws it with.
    Explained {
        explanation: Box<Explanation>,
        recorded: Box<crate::share::Recorded>,
        millis: f64,
        /// The worker's wasm memory after the explanation (its peak so far).
        wasm_memory_bytes: u64,
        /// Question words the vocabulary has no whole piece for, with their pieces.
        #[serde(default)]
        split_words: Vec<(String, Vec<String>)>,
    },
    /// The curves, as the CLI's `results[]` (llava_lens_explain::faithfulness).
    Faithful {
        result: Box<Faithfulness>,
        millis: f64,
    },
    /// p(target) and the top tokens before and after a knockout.
    KnockedOut {
        patches: Vec<usize>,
        before: Box<Outcome>,
        after: Box<Outcome>,
        millis: f64,
    },
    /// The answer with heads ablated, beside the unablated one.
    Ablated {
        ablation: Box<HeadAblation>,
        millis: f64,
    },
    /// Activation patching's grids, with a label for every position (its token, or the image
    /// patch's row and column) and the two answer words.
    Patched {
        patching: Box<Patching>,
        labels: Vec<String>,
        target: String,
        contrast: String,
        millis: f64,
    },
    /// The whole answer: each token's text and its explanation (as the CLI's `answer`), and what
    /// the page draws for each.
    AnswerExplained {
        tokens: Vec<String>,
        explanations: Vec<Explanation>,
        recorded: Vec<crate::share::Recorded>,
        millis: f64,
    },
    /// The answer on the map's window and on random windows, with the map's window as JPEG.
    Zoomed {
        before: Box<Outcome>,
        by_map: Box<Zoomed>,
        random: Vec<Zoomed>,
        #[serde(with = "crate::share::b64")]
        window_jpeg: Vec<u8>,
        millis: f64,
    },
    Error {
        message: String,
    },
}

impl Request {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }
}

impl Response {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    pub fn from_json(text: &str) -> Result<Response, String> {
        serde_json::from_str(text).map_err(|e| format!("unreadable message from the worker: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_a_kind_tag() {
        let r = Request::Load { source: ModelSource::Url { url: "models/scenes-tiny/".into() }, dtype: WeightDType::F32 };
        let j = r.to_json();
        assert!(j.contains(r#""kind":"load""#), "{j}");
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r);
        let p = Response::Progress { stage: "weights".into(), done: 3, total: 7 };
        assert_eq!(Response::from_json(&p.to_json()).unwrap(), p);
        assert!(Response::from_json("{\"kind\":\"nope\"}").unwrap_err().contains("unreadable"));
        let e = r#"{"kind":"explain","image_base64":"","question":"q","answer_prefix":"","target":null,"contrast":null,"top_k_heads":3}"#;
        assert!(matches!(serde_json::from_str::<Request>(e).unwrap(), Request::Explain { head_maps, .. } if head_maps.is_empty()));
        let f = Request::Inspect { source: ModelSource::Files, dtype: WeightDType::Q4 }.to_json();
        assert!(f.contains(r#""from":"files""#) && f.contains(r#""dtype":"q4""#), "{f}");
        let op = Request::Faithfulness { operator: Operator::Knockout, steps: 8, seeds: 2 }.to_json();
        assert!(op.contains(r#""operator":"knockout""#), "{op}");
        assert!(serde_json::from_str::<Request>(&op.replace("knockout", "both")).is_err(), "an unknown operator is refused");
        let a = Request::Ablate { heads: vec![(2, 0)], mode: Ablation::Mean }.to_json();
        assert_eq!(a, r#"{"kind":"ablate","heads":[[2,0]],"mode":"mean"}"#);
        let k = Request::Knockout { patches: vec![3, 14] }.to_json();
        assert_eq!(k, r#"{"kind":"knockout","patches":[3,14]}"#);
        let p = Request::Patch { image_base64: "AA==".into(), question: "q".into(), positions: PatchPositions::Image }.to_json();
        assert!(p.contains(r#""positions":"image""#), "{p}");
        assert_eq!(
            serde_json::from_str::<Request>(&p).unwrap(),
            Request::Patch { image_base64: "AA==".into(), question: "q".into(), positions: PatchPositions::Image }
        );
    }

    #[test]
    fn patch_positions_split_the_sequence_at_the_image() {
        assert_eq!(PatchPositions::Image.select(8, (2, 3)), vec![2, 3, 4]);
        assert_eq!(PatchPositions::Text.select(8, (2, 3)), vec![0, 1, 5, 6, 7]);
        assert_eq!(PatchPositions::All.select(4, (0, 0)), vec![0, 1, 2, 3]);
        assert_eq!(PatchPositions::Text.select(4, (0, 0)), vec![0, 1, 2, 3], "a text-only prompt is all text");
    }
}
