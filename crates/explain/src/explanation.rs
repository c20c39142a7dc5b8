//! The explanation document (docs/EXPLANATION.md): one typed value from the engine to the CLI's
//! JSON and the page, serialised to the documented schema and read back from it.

use llava_lens_model::LlavaTokenizer;
use serde::{Deserialize, Serialize};

/// Version tag of the explanation JSON (docs/EXPLANATION.md).
pub const SCHEMA: &str = "llava-lens.explanation/1";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadScore {
    pub layer: usize,
    pub head: usize,
    /// log p(target | baseline + head output) - log p(target | baseline), nats.
    pub score: f32,
}

/// A scored token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: u32,
    pub text: Option<String>,
    /// Log-probability at the last prompt position (the model's own final norm).
    pub log_prob: f32,
}

/// Everything `llava-lens explain` reports. The engine fills the method's numbers; the caller
/// names the tokens ([`Explanation::name_tokens`]) and, in the CLI, adds the image, crop and
/// legend it drew with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub schema: String,
    pub model: String,
    pub dtype: String,
    pub prompt_ids: Vec<u32>,
    pub image_offset: usize,
    pub image_tokens: usize,
    pub grid: usize,
    pub sequence_length: usize,
    /// The model's own top-1 next token (the default target).
    pub prediction: u32,
    /// The model's top next tokens with their log-probabilities, best first.
    pub top: Vec<TokenInfo>,
    pub target: TokenInfo,
    /// With a contrast token B every score is of `logp(A) - logp(B)`, i.e. the logit difference.
    pub contrast: Option<TokenInfo>,
    /// `[layers][heads]`, nats.
    pub head_scores: Vec<Vec<f32>>,
    /// Attention-layer importance against the residual entering the layer, per layer.
    pub attention_layer_scores: Vec<f32>,
    /// MLP importance against the residual after attention, per layer.
    pub mlp_layer_scores: Vec<f32>,
    pub top_heads: Vec<HeadScore>,
    pub best_head: HeadScore,
    /// The best head's score of every sequence position.
    pub position_scores: Vec<f32>,
    /// The best head's attention of the last query on every position.
    pub position_attention: Vec<f32>,
    /// `position_scores` at the image positions, row-major over the patch grid.
    pub patch_scores: Vec<f32>,
    /// `patch_scores` min-max normalised and divided by their sum (None if all equal).
    pub patch_map: Option<Vec<f32>>,
    /// Mean over every layer and head of the last query's attention on each patch.
    pub baseline_map: Vec<f32>,
    /// Extension (not in the paper): the sum of the top-k heads' patch scores, when k > 1.
    pub top_k_heads_map: Option<TopKMap>,
    /// Per-patch scores of each head mapped: the top k, best first, then the heads asked for.
    pub head_maps: Vec<HeadMap>,
    /// Per-patch top tokens (ids; their text is in `logit_lens_text`).
    pub logit_lens: Option<LogitLens>,
    /// Key-input / value-input decomposition at the chosen positions (empty when none).
    pub decomposition: Vec<Decomposition>,
    /// The information-storage reading at the best heads' top positions, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    pub timings_ms: Timings,
    /// Bytes read back from the GPU for the explanation (the forward pass's top-5 included).
    pub bytes_read_back: u64,
    /// The text of `logit_lens`'s tokens ([`Explanation::name_tokens`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_lens_text: Option<LensText>,
    /// The text of `decomposition`'s tokens ([`Explanation::name_tokens`]; absent when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decomposition_text: Option<Vec<DecompositionText>>,
    /// The image explained, as the CLI was given it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The region of the image the model saw, in its pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<Crop>,
    /// The value range and colours of the drawn map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legend: Option<MapLegend>,
}

impl Explanation {
    /// Names every token the explanation holds (target, contrast, top tokens, the logit lens and
    /// the decomposition) with `tok`'s pieces: the engine has ids only.
    pub fn name_tokens(&mut self, tok: &LlavaTokenizer) {
        let text = |id: u32| tok.token(id).unwrap_or_default();
        let rows = |rows: &Vec<Vec<u32>>| -> Vec<Vec<String>> { rows.iter().map(|r| r.iter().map(|&id| text(id)).collect()).collect() };
        for t in std::iter::once(&mut self.target).chain(self.contrast.as_mut()).chain(self.top.iter_mut()) {
            t.text = tok.token(t.id);
        }
        self.logit_lens_text =
            self.logit_lens.as_ref().map(|l| LensText { embedding: rows(&l.embedding), residual: l.residual.as_ref().map(rows) });
        if let Some(st) = self.storage.as_mut() {
            st.value_token_text = Some(st.value_tokens.iter().map(|&id| text(id)).collect());
            st.input_token_text = Some(st.input_tokens.iter().map(|&id| text(id)).collect());
        }
        self.decomposition_text = (!self.decomposition.is_empty()).then(|| {
            let pieces = |ids: &[u32]| ids.iter().map(|&id| text(id)).collect();
            self.decomposition
                .iter()
                .map(|d| DecompositionText {
                    position: d.position,
                    key_input: pieces(&d.key_input_top),
                    value_input: pieces(&d.value_input_top),
                })
                .collect()
        });
    }

    /// The documented JSON: pretty, keys in alphabetical order, numbers as f64 (the schema's
    /// form since its first version; the value is built first so both hold).
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(&serde_json::to_value(self)?)
    }

    /// An explanation from its JSON.
    pub fn from_json(text: &str) -> Result<Explanation, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The per-patch scores of head (layer, head), if it was mapped.
    pub fn head_map(&self, layer: usize, head: usize) -> Option<&[f32]> {
        self.head_maps.iter().find(|m| (m.head.layer, m.head.head) == (layer, head)).map(|m| m.patch_scores.as_slice())
    }
}

/// Top tokens per image patch (docs/METHOD.md, the logit lens): `embedding[p]` projects the
/// projector output of patch p with the input embedding matrix; `residual[p]` the residual
/// entering `residual_layer` with the fixed-scale unembedding z(.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitLens {
    pub k: usize,
    pub embedding: Vec<Vec<u32>>,
    pub residual_layer: Option<usize>,
    pub residual: Option<Vec<Vec<u32>>>,
}

/// The text of [`LogitLens`]'s tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LensText {
    pub embedding: Vec<Vec<String>>,
    pub residual: Option<Vec<Vec<String>>>,
}

/// docs/METHOD.md's decomposition at one position: top tokens of the summed attention outputs
/// (key input) and summed MLP outputs (value input) of layers `0..layer`, each through z(.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decomposition {
    pub position: usize,
    pub layer: usize,
    pub key_input_top: Vec<u32>,
    pub value_input_top: Vec<u32>,
}

/// docs/METHOD.md's information storage: where chosen tokens rank (1 = top of the vocabulary)
/// through z(.) at the top positions of the best heads, in each position's value-output vector
/// (`u_j = alpha_j v_j W_O^h`: what the head moves) and in the residual entering the head's layer
/// (`x^l_j`: what the position holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// Ranked in the value-output vectors (the paper: the correct colour, then a random one).
    pub value_tokens: Vec<u32>,
    /// Ranked in the layer inputs (the paper: the correct object, then a random one).
    pub input_tokens: Vec<u32>,
    /// The best heads, best first.
    pub heads: Vec<StorageHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_token_text: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_text: Option<Vec<String>>,
}

/// One head's storage reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageHead {
    pub head: HeadScore,
    /// Its top positions by position score, best first (sequence indices).
    pub positions: Vec<usize>,
    /// `[position][value token]` ranks.
    pub value_ranks: Vec<Vec<u32>>,
    /// `[position][input token]` ranks.
    pub input_ranks: Vec<Vec<u32>>,
}

/// The text of one [`Decomposition`]'s tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecompositionText {
    pub position: usize,
    pub key_input: Vec<String>,
    pub value_input: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopKMap {
    pub k: usize,
    pub heads: Vec<HeadScore>,
    pub patch_scores: Vec<f32>,
}

/// One head's score of every image patch (the paper's map, for any head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadMap {
    pub head: HeadScore,
    pub patch_scores: Vec<f32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub forward: Option<f64>,
    pub head_scores: Option<f64>,
    pub position_scores: Option<f64>,
}

/// The region of the original image the model saw, in its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Crop {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// What the colours of a drawn map mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapLegend {
    pub min: f32,
    pub max: f32,
    pub colormap: String,
    pub units: String,
}
