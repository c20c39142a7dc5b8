//! Messages between the page and the worker: JSON strings through `postMessage`, one enum each
//! way, so both sides agree by construction.

use serde::{Deserialize, Serialize};

/// Page -> worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Load an HF-format model folder served at `base_url` (config.json, tokenizer.json,
    /// model.safetensors) with weights in `dtype` (f32, f16, q8, q4).
    Load { base_url: String, dtype: String },
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
    },
}

/// Worker -> page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// The worker's wasm is running and listens.
    Ready,
    Progress {
        stage: String,
        done: u64,
        total: u64,
    },
    Loaded {
        model: String,
        adapter: String,
        weight_bytes: u64,
        grid: usize,
        layers: usize,
        heads: usize,
    },
    /// The explanation in the CLI's JSON schema (`llava-lens explain --json`) plus what the page
    /// draws it with.
    Explained {
        explanation: serde_json::Value,
        recorded: Box<crate::share::Recorded>,
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
        let r = Request::Load { base_url: "models/scenes-tiny/".into(), dtype: "f32".into() };
        let j = r.to_json();
        assert!(j.contains(r#""kind":"load""#), "{j}");
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r);
        let p = Response::Progress { stage: "weights".into(), done: 3, total: 7 };
        assert_eq!(Response::from_json(&p.to_json()).unwrap(), p);
        assert!(Response::from_json("{\"kind\":\"nope\"}").unwrap_err().contains("unreadable"));
    }
}
