//! What an explanation is asked for ([`ExplainOptions`]) and the checks of every option against
//! the model and the sequence, before any GPU work.

use llava_lens_model::LlavaConfig;

use crate::engine::ExplainError;
use crate::storage::StorageProbe;

#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// Token to explain; the model's top-1 next token when None.
    pub target: Option<u32>,
    /// "Why target rather than contrast": scores of the logit difference.
    pub contrast: Option<u32>,
    /// Also sum the patch scores of the top k heads (extension; 1 = the paper's single head; more
    /// than the model has means all of them).
    pub top_k_heads: usize,
    /// Logit lens: tokens per image patch (0 = off).
    pub lens_k: usize,
    /// Layer whose image-position residuals the lens also reads through z(.) (planned before
    /// the forward pass; None: the embedding lens only).
    pub lens_layer: Option<usize>,
    /// Sequence positions whose residual entering `decompose_layer` is split into its
    /// attention part ("key input") and MLP part ("value input"), each read through z(.).
    pub decompose: Vec<usize>,
    /// Layer of the decomposition (default: the residual after the last layer).
    pub decompose_layer: Option<usize>,
    /// Heads (layer, head) whose per-patch scores are also wanted, besides the top k (a page
    /// showing the map of a head the user picked).
    pub head_maps: Vec<(usize, usize)>,
    /// The information-storage reading at the best heads' top positions (docs/METHOD.md); it
    /// keeps every layer's residual at every position on the GPU for the pass (layers x
    /// sequence x hidden floats).
    pub storage: Option<StorageProbe>,
    /// Label for the JSON.
    pub model_name: String,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            target: None,
            contrast: None,
            top_k_heads: 1,
            lens_k: 5,
            lens_layer: None,
            decompose: Vec::new(),
            decompose_layer: None,
            head_maps: Vec::new(),
            storage: None,
            model_name: String::new(),
        }
    }
}

/// The most logit-lens tokens per patch an explanation reports.
pub const MAX_LENS_K: usize = 100;

/// How many of the model's top next tokens an explanation reports.
pub const TOP_TOKENS: usize = 5;

impl ExplainOptions {
    /// Every option against the model and the sequence of `seq` positions, before any GPU work:
    /// out-of-range values are errors that say the range, never clamped.
    pub fn check(&self, config: &LlavaConfig, seq: usize) -> Result<(), ExplainError> {
        let t = &config.text;
        let (layers, heads) = (t.num_hidden_layers, t.num_attention_heads);
        let bad = |m: String| Err(ExplainError::Input(m));
        if self.top_k_heads == 0 {
            return bad("top-k heads must be at least 1 (the paper's map is the best head's)".into());
        }
        let max_k = MAX_LENS_K.min(t.vocab_size);
        if self.lens_k > max_k {
            return bad(format!("lens k {} is more than {max_k} tokens per patch", self.lens_k));
        }
        if let Some(l) = self.lens_layer.filter(|&l| l >= layers) {
            return bad(format!("lens layer {l} does not exist: the decoder's layers are 0..={}", layers - 1));
        }
        if let Some(l) = self.decompose_layer.filter(|&l| l > layers) {
            return bad(format!("decompose layer {l} is outside 0..={layers} ({layers}: after the last layer)"));
        }
        if let Some(&p) = self.decompose.iter().find(|&&p| p >= seq) {
            return bad(format!("position {p} is outside the sequence of {seq}"));
        }
        if let Some(&(l, h)) = self.head_maps.iter().find(|&&(l, h)| l >= layers || h >= heads) {
            return bad(format!("head {l}.{h} does not exist: the model has {layers} layers of {heads} heads"));
        }
        let storage = self.storage.iter().flat_map(|p| {
            p.value_tokens.iter().map(|&id| ("storage value", id)).chain(p.input_tokens.iter().map(|&id| ("storage input", id)))
        });
        for (what, id) in
            [("target", self.target), ("contrast", self.contrast)].into_iter().filter_map(|(w, t)| Some((w, t?))).chain(storage)
        {
            if id as usize >= t.vocab_size {
                return bad(format!("{what} token id {id} is outside the vocabulary of {}", t.vocab_size));
            }
        }
        if let Some(p) = self.storage.as_ref().filter(|p| p.heads == 0 || p.positions == 0) {
            return bad(format!("the storage reading needs at least one head and one position (asked {} and {})", p.heads, p.positions));
        }
        Ok(())
    }
}
