use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong turning files into a running model. Each variant names the file
/// (or tensor, or key) at fault and what was expected, so a user can fix the input.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error("{path}: not a valid safetensors file: {detail}")]
    Safetensors { path: PathBuf, detail: String },
    /// Bytes that could not be read (a network or disk failure, a file shorter than it said).
    #[error("{path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: tensor {name}: expected {expected}, found {found}")]
    Tensor { path: PathBuf, name: String, expected: String, found: String },
    #[error("missing tensor {name} (looked for it in {searched})")]
    MissingTensor { name: String, searched: String },
    #[error("{path}: {detail}")]
    Tokenizer { path: PathBuf, detail: String },
    #[error("{what}: {detail}")]
    Image { what: String, detail: String },
    #[error("prompt: {0}")]
    Prompt(String),
    /// NaN or infinity where numbers were computed: `stage` says where, `detail` what is known of
    /// the cause.
    #[error("{stage} produced non-finite values: {detail}")]
    NonFinite { stage: String, detail: String },
    #[error(transparent)]
    Gpu(#[from] llava_lens_gpu::GpuError),
    #[error(transparent)]
    Tensor2(#[from] llava_lens_tensor::TensorError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), source }
    }

    /// A read that failed: `path` names the file (or URL), `detail` what happened.
    pub fn read(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        ModelError::Read { path: path.into(), detail: detail.into() }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        ModelError::Config { path: path.into(), detail: detail.into() }
    }

    pub fn non_finite(stage: impl Into<String>, detail: impl Into<String>) -> Self {
        ModelError::NonFinite { stage: stage.into(), detail: detail.into() }
    }
}

/// An error unless every `(token, log-probability)` of a top-k read back from the GPU is a
/// token of the vocabulary with a finite log-probability: NaN logits make the top-k kernel
/// return no token (id u32::MAX) and NaN log-probabilities, which must never be reported as an
/// answer. The weights were checked finite when loaded, so the numbers overflowed on the way.
pub fn check_top(stage: &str, top: &[(u32, f32)], vocab: usize) -> Result<(), ModelError> {
    match top.iter().find(|(id, lp)| *id as usize >= vocab || !lp.is_finite()) {
        None => Ok(()),
        Some((id, lp)) => Err(ModelError::non_finite(
            stage,
            format!(
                "the logits are not finite (top token {}, log-probability {lp}); the weights are finite, so activations overflowed \
                 (f16 or quantised weights can overflow where f32 weights do not)",
                if *id as usize >= vocab { "none".to_string() } else { id.to_string() }
            ),
        )),
    }
}
