//! The pure part of the method: importance from log-probabilities, head ranking, patch maps.

use serde::Serialize;

/// The authors' epsilon in the fixed-scale projection (the model's own RMSNorm uses 1e-5).
pub const PROJECTION_EPS: f32 = 1e-6;

/// Version tag of the explanation JSON (docs/EXPLANATION.md).
pub const SCHEMA: &str = "llava-lens.explanation/1";

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeadScore {
    pub layer: usize,
    pub head: usize,
    /// log p(target | baseline + head output) - log p(target | baseline), nats.
    pub score: f32,
}

/// `Imp(c | b) = logp(w | b + c) - logp(w | b)`.
pub fn importance(with_component: f32, baseline: f32) -> f32 {
    with_component - baseline
}

/// Heads sorted by score, best first (ties: lower layer, then lower head).
pub fn rank_heads(scores: &[Vec<f32>]) -> Vec<HeadScore> {
    let mut all: Vec<HeadScore> = scores
        .iter()
        .enumerate()
        .flat_map(|(layer, row)| row.iter().enumerate().map(move |(head, &score)| HeadScore { layer, head, score }))
        .collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.layer.cmp(&b.layer)).then(a.head.cmp(&b.head)));
    all
}

/// The authors' display normalisation: min-max to [0, 1], then divided by the sum. None when
/// every score is equal (min-max is undefined there).
pub fn normalise_map(scores: &[f32]) -> Option<Vec<f32>> {
    if scores.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    if hi <= lo {
        return None;
    }
    let scaled: Vec<f32> = scores.iter().map(|&v| (v - lo) / (hi - lo)).collect();
    let sum: f32 = scaled.iter().sum();
    Some(scaled.iter().map(|v| v / sum).collect())
}

/// A scored token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenInfo {
    pub id: u32,
    pub text: Option<String>,
    /// Log-probability at the last prompt position (the model's own final norm).
    pub log_prob: f32,
}

/// Everything `llava-lens explain` reports (schema in docs/EXPLANATION.md).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub schema: &'static str,
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
    /// Per-patch top tokens (ids; `llava-lens explain` adds their text).
    pub logit_lens: Option<LogitLens>,
    /// Key-input / value-input decomposition at the chosen positions (empty when none).
    pub decomposition: Vec<Decomposition>,
    pub timings_ms: Timings,
    /// Bytes read back from the GPU for the explanation (the forward pass's top-5 included).
    pub bytes_read_back: u64,
}

impl Explanation {
    /// Fills in the text of every token the explanation names (target, contrast, top tokens);
    /// the engine has ids only, the caller has the tokenizer.
    pub fn name_tokens(&mut self, text_of: impl Fn(u32) -> Option<String>) {
        for t in std::iter::once(&mut self.target).chain(self.contrast.as_mut()).chain(self.top.iter_mut()) {
            t.text = text_of(t.id);
        }
    }
}

/// Top tokens per image patch (METHOD.md sec. 5): `embedding[p]` projects the projector output
/// of patch p with the input embedding matrix; `residual[p]` the residual entering
/// `residual_layer` with the fixed-scale unembedding z(.).
#[derive(Debug, Clone, Serialize)]
pub struct LogitLens {
    pub k: usize,
    pub embedding: Vec<Vec<u32>>,
    pub residual_layer: Option<usize>,
    pub residual: Option<Vec<Vec<u32>>>,
}

/// METHOD.md sec. 5 at one position: top tokens of the summed attention outputs (key input) and
/// summed MLP outputs (value input) of layers `0..layer`, each through z(.).
#[derive(Debug, Clone, Serialize)]
pub struct Decomposition {
    pub position: usize,
    pub layer: usize,
    pub key_input_top: Vec<u32>,
    pub value_input_top: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopKMap {
    pub k: usize,
    pub heads: Vec<HeadScore>,
    pub patch_scores: Vec<f32>,
}

/// One head's score of every image patch (the paper's map, for any head).
#[derive(Debug, Clone, Serialize)]
pub struct HeadMap {
    pub head: HeadScore,
    pub patch_scores: Vec<f32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub forward: Option<f64>,
    pub head_scores: Option<f64>,
    pub position_scores: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_ranking() {
        assert_eq!(normalise_map(&[1.0, 3.0, 2.0]).unwrap(), vec![0.0, 2.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(normalise_map(&[0.5, 0.5]), None);
        assert_eq!(normalise_map(&[f32::NAN, 1.0]), None, "NaN scores give no map rather than a wrong one");
        let r = rank_heads(&[vec![0.1, 0.5], vec![0.5, -1.0]]);
        assert_eq!((r[0].layer, r[0].head), (0, 1));
        assert_eq!((r[1].layer, r[1].head), (1, 0));
        assert_eq!(r[3].score, -1.0);
        assert_eq!(importance(-1.0, -3.0), 2.0);
    }
}
