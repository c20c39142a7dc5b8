use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter found ({backends}). {advice} Detail: {detail}")]
    NoAdapter { backends: String, advice: &'static str, detail: String },
    #[error("the adapter {adapter:?} refused a device: {detail}")]
    Device { adapter: String, detail: String },
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("reading back {what}: {detail}")]
    Readback { what: &'static str, detail: String },
    #[error("capture plan: {0}")]
    Capture(String),
    #[error(transparent)]
    Tensor(#[from] llava_lens_tensor::TensorError),
    /// An error the device reported on its own (validation, out of memory), in words.
    #[error("{0}")]
    Reported(String),
}

impl GpuError {
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        GpuError::Shape { op, detail: detail.into() }
    }
}

/// Fails with a shape error naming `op` unless `cond` holds.
pub(crate) fn ensure(cond: bool, op: &'static str, detail: impl FnOnce() -> String) -> Result<(), GpuError> {
    if cond { Ok(()) } else { Err(GpuError::shape(op, detail())) }
}
