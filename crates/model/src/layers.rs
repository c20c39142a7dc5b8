//! The HF modules every model file is built from: `nn.Linear`, `nn.LayerNorm`, `LlamaRMSNorm`.
//! Each allocates its output and records its ops.

use llava_lens_gpu::{GpuMatrix, GpuTensor, Recorder, ops};

use crate::ModelError;
use crate::weights::{Role, Uploader};

/// Rows of a `[rows, cols]` activation.
pub(crate) fn rows_of(x: &GpuTensor) -> usize {
    x.shape().first().copied().unwrap_or(1)
}

/// `nn.Linear` (weight `[out, in]`, optional bias).
#[derive(Debug)]
pub struct Linear {
    pub weight: GpuMatrix,
    pub bias: Option<GpuTensor>,
}

impl Linear {
    pub(crate) async fn load(
        up: &mut Uploader<'_>,
        prefix: &str,
        out_f: usize,
        in_f: usize,
        bias: bool,
        role: Role,
    ) -> Result<Self, ModelError> {
        let weight = up.matrix(&[&format!("{prefix}.weight")], &[out_f], in_f, role).await?;
        let bias = if bias { Some(up.vector(&format!("{prefix}.bias"), out_f).await?) } else { None };
        Ok(Linear { weight, bias })
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows
    }

    /// `x [m, in] -> [m, out]`: a matvec for one row (decode), a tiled GEMM otherwise.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<GpuTensor, ModelError> {
        let m = rows_of(x);
        let y = GpuTensor::output(rec.ctx(), &[m, self.weight.rows], "linear out");
        if m == 1 {
            ops::matvec(rec, &x.view(rec.ctx(), 0, &[self.weight.cols])?, &self.weight, &y)?;
        } else {
            ops::matmul(rec, x, &self.weight, &y)?;
        }
        if let Some(b) = &self.bias {
            ops::bias_add(rec, &y, b)?;
        }
        Ok(y)
    }
}

/// `nn.LayerNorm`.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: GpuTensor,
    pub bias: GpuTensor,
    pub eps: f32,
}

impl LayerNorm {
    pub(crate) async fn load(up: &mut Uploader<'_>, prefix: &str, d: usize, eps: f32) -> Result<Self, ModelError> {
        Ok(LayerNorm {
            weight: up.vector(&format!("{prefix}.weight"), d).await?,
            bias: up.vector(&format!("{prefix}.bias"), d).await?,
            eps,
        })
    }

    pub fn forward(&self, rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<GpuTensor, ModelError> {
        let y = GpuTensor::output(rec.ctx(), x.shape(), "layer_norm out");
        ops::layer_norm(rec, x, &self.weight, &self.bias, &y, self.eps)?;
        Ok(y)
    }
}

/// `LlamaRMSNorm`.
#[derive(Debug)]
pub struct RmsNorm {
    pub weight: GpuTensor,
    pub eps: f32,
}

impl RmsNorm {
    pub(crate) async fn load(up: &mut Uploader<'_>, name: &str, d: usize, eps: f32) -> Result<Self, ModelError> {
        Ok(RmsNorm { weight: up.vector(name, d).await?, eps })
    }

    pub fn forward(&self, rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<GpuTensor, ModelError> {
        let y = GpuTensor::output(rec.ctx(), x.shape(), "rms_norm out");
        ops::rms_norm(rec, x, &self.weight, &y, self.eps)?;
        Ok(y)
    }
}
