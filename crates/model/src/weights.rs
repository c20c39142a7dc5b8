//! Which dtype each weight gets on the GPU (DESIGN.md's policy), and uploading one tensor at a
//! time from a checkpoint: never a whole f32 copy of the model in memory.

use std::str::FromStr;

use llava_lens_gpu::{GpuContext, GpuMatrix, GpuTensor};
use llava_lens_tensor::{DType, GROUP_SIZE, HostMatrix};

use crate::{Checkpoint, ModelError};

/// `--dtype`: f32 (fidelity, the paper's setting), f16, q8, q4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDType {
    F32,
    F16,
    Q8,
    Q4,
}

impl FromStr for WeightDType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(WeightDType::F32),
            "f16" => Ok(WeightDType::F16),
            "q8" => Ok(WeightDType::Q8),
            "q4" => Ok(WeightDType::Q4),
            _ => Err(format!("unknown dtype {s:?}; expected f32, f16, q8 or q4")),
        }
    }
}

impl WeightDType {
    pub fn name(self) -> &'static str {
        match self {
            WeightDType::F32 => "f32",
            WeightDType::F16 => "f16",
            WeightDType::Q8 => "q8",
            WeightDType::Q4 => "q4",
        }
    }
}

/// The role of a matrix in the model, which decides its GPU dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// q/k/v/o and MLP projections of the LLaMA decoder.
    DecoderLinear,
    /// embed_tokens and lm_head.
    Vocabulary,
    /// The CLIP tower and the projector.
    Vision,
}

/// DESIGN.md: q4 = Q4G32 decoder linears, Q8G32 vocabulary matrices, f16 vision and projector;
/// q8 = Q8G32 for both decoder and vocabulary. Quantised formats need K to be a multiple of 32;
/// a matrix whose K is not falls back to f16.
pub fn gpu_dtype(policy: WeightDType, role: Role, cols: usize) -> DType {
    let wanted = match (policy, role) {
        (WeightDType::F32, _) => DType::F32,
        (WeightDType::F16, _) | (_, Role::Vision) => DType::F16,
        (WeightDType::Q8, _) | (WeightDType::Q4, Role::Vocabulary) => DType::Q8G32,
        (WeightDType::Q4, Role::DecoderLinear) => DType::Q4G32,
    };
    if wanted.is_quantized() && !cols.is_multiple_of(GROUP_SIZE) { DType::F16 } else { wanted }
}

/// Uploads checkpoint tensors, tracking the bytes placed on the GPU.
pub struct Uploader<'a> {
    pub ctx: &'a GpuContext,
    pub ckpt: &'a Checkpoint,
    pub policy: WeightDType,
    pub gpu_bytes: u64,
    /// Called after each tensor with its name (progress bars).
    pub on_tensor: Option<&'a dyn Fn(&str)>,
}

impl std::fmt::Debug for Uploader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader").field("policy", &self.policy).field("gpu_bytes", &self.gpu_bytes).finish()
    }
}

impl<'a> Uploader<'a> {
    fn done(&self, name: &str) {
        if let Some(f) = self.on_tensor {
            f(name);
        }
    }

    /// The `[rows, cols]` matrix `name` (or several stacked by rows) in the role's dtype.
    pub fn matrix(&mut self, names: &[&str], rows: &[usize], cols: usize, role: Role) -> Result<GpuMatrix, ModelError> {
        let mut data = Vec::with_capacity(rows.iter().sum::<usize>() * cols);
        for (name, &r) in names.iter().zip(rows) {
            data.extend(self.ckpt.f32(name, &[r, cols])?);
        }
        let total: usize = rows.iter().sum();
        let dtype = gpu_dtype(self.policy, role, cols);
        let host = HostMatrix::from_f32(total, cols, &data, dtype)?;
        drop(data);
        let m = GpuMatrix::upload(self.ctx, &host, names[0])?;
        self.gpu_bytes += host.row_bytes() as u64 * total as u64;
        names.iter().for_each(|n| self.done(n));
        Ok(m)
    }

    /// A vector (norm weight, bias) in f32.
    pub fn vector(&mut self, name: &str, len: usize) -> Result<GpuTensor, ModelError> {
        let v = self.ckpt.f32(name, &[len])?;
        self.gpu_bytes += 4 * len as u64;
        self.done(name);
        Ok(GpuTensor::from_f32(self.ctx, &v, &[len], name)?)
    }

    /// Any tensor in f32 with the given shape (position and class embeddings).
    pub fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<GpuTensor, ModelError> {
        let v = self.ckpt.f32(name, shape)?;
        self.gpu_bytes += 4 * v.len() as u64;
        self.done(name);
        Ok(GpuTensor::from_f32(self.ctx, &v, &[v.len()], name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_policy() {
        assert_eq!(gpu_dtype(WeightDType::Q4, Role::DecoderLinear, 4096), DType::Q4G32);
        assert_eq!(gpu_dtype(WeightDType::Q4, Role::Vocabulary, 4096), DType::Q8G32);
        assert_eq!(gpu_dtype(WeightDType::Q4, Role::Vision, 1024), DType::F16);
        assert_eq!(gpu_dtype(WeightDType::Q8, Role::DecoderLinear, 11008), DType::Q8G32);
        assert_eq!(gpu_dtype(WeightDType::Q4, Role::DecoderLinear, 100), DType::F16, "K not a multiple of 32");
        assert_eq!(gpu_dtype(WeightDType::F32, Role::Vision, 588), DType::F32);
    }
}
