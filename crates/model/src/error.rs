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
}
