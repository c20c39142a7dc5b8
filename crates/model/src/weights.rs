//! Which dtype each weight gets on the GPU (the policy docs/MODEL.md states), and uploading one tensor at a
//! time from a checkpoint: never a whole f32 copy of the model in memory.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use llava_lens_gpu::{GpuContext, GpuMatrix, GpuTensor};
use llava_lens_tensor::{DType, GROUP_SIZE, HostMatrix, Rng};

use crate::{Checkpoint, ModelError};

/// One tensor on its way from a source, as f32.
pub type TensorFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<f32>, ModelError>> + 'a>>;

/// Where weights come from: a checkpoint in memory or mapped, one read piece by piece (network,
/// browser files), or generated (benchmarks of 7B shapes need no file). Asynchronous because
/// a browser can only wait for bytes by yielding.
pub trait WeightSource {
    /// Tensor `name` (canonical) as f32, checked to have `shape`.
    fn f32<'a>(&'a self, name: &'a str, shape: &'a [usize]) -> TensorFuture<'a>;

    /// Rows `[start, end)` of the matrix `name` (checked to have `shape`) as f32, for sources
    /// that can read part of a tensor ([`WeightSource::reads_rows`]); others read it whole.
    fn f32_rows<'a>(&'a self, name: &'a str, shape: &'a [usize], start: usize, end: usize) -> TensorFuture<'a> {
        Box::pin(async move {
            let cols: usize = shape[1..].iter().product();
            Ok(self.f32(name, shape).await?[start * cols..end * cols].to_vec())
        })
    }

    /// Whether [`WeightSource::f32_rows`] reads only the rows asked for (then the loader converts
    /// large matrices a slice at a time and never holds one whole in memory).
    fn reads_rows(&self) -> bool {
        false
    }

    /// An error if the source holds `name` with another shape (or not at all), without reading
    /// its values: checked before GPU memory is allocated for it. Sources that make their
    /// tensors (random weights) have every shape.
    fn check_shape(&self, name: &str, shape: &[usize]) -> Result<(), ModelError> {
        let _ = (name, shape);
        Ok(())
    }
}

impl WeightSource for Checkpoint {
    fn f32<'a>(&'a self, name: &'a str, shape: &'a [usize]) -> TensorFuture<'a> {
        Box::pin(std::future::ready(Checkpoint::f32(self, name, shape)))
    }

    fn f32_rows<'a>(&'a self, name: &'a str, shape: &'a [usize], start: usize, end: usize) -> TensorFuture<'a> {
        Box::pin(std::future::ready(Checkpoint::f32_rows(self, name, shape, start, end)))
    }

    fn reads_rows(&self) -> bool {
        true
    }

    fn check_shape(&self, name: &str, shape: &[usize]) -> Result<(), ModelError> {
        let t = self.raw(name)?;
        crate::checkpoint::check_shape(t.path, name, t.shape, shape)
    }
}

/// Bytes of f32 values the loader converts at once for a large matrix (a slice of rows): the
/// memory a load needs beyond the GPU's, whatever the model's size.
pub const CHUNK_F32_BYTES: usize = 16 << 20;

/// Seeded uniform random weights of any shape (speed measurements only: values in
/// +-1/sqrt(fan_in), vectors near 1 so norms stay sane), generated one tensor at a time.
#[derive(Debug, Clone, Copy)]
pub struct RandomWeights {
    pub seed: u64,
}

impl WeightSource for RandomWeights {
    fn f32<'a>(&'a self, name: &'a str, shape: &'a [usize]) -> TensorFuture<'a> {
        Box::pin(std::future::ready(Ok(self.generate(name, shape))))
    }
}

impl RandomWeights {
    fn generate(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        // A per-name stream, so the same tensor is the same whatever the load order.
        let h = name.bytes().fold(self.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x1000_0000_01b3));
        let n: usize = shape.iter().product();
        let fan_in = shape.last().copied().unwrap_or(1).max(1);
        let (scale, center) = if shape.len() == 1 { (0.1, 1.0) } else { (2.0 / (fan_in as f32).sqrt(), 0.0) };
        let mut out = vec![0f32; n];
        // Chunks with their own streams, filled in parallel natively (7B shapes: 7e9 values).
        const CHUNK: usize = 1 << 20;
        let fill = |(i, chunk): (usize, &mut [f32])| {
            let mut rng = Rng::new(h ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            chunk.iter_mut().for_each(|v| *v = center + scale * (rng.next_f32() - 0.5));
        };
        #[cfg(not(target_arch = "wasm32"))]
        std::thread::scope(|s| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut chunks: Vec<(usize, &mut [f32])> = out.chunks_mut(CHUNK).enumerate().collect();
            let per = chunks.len().div_ceil(threads).max(1);
            while !chunks.is_empty() {
                let batch: Vec<_> = chunks.drain(..per.min(chunks.len())).collect();
                s.spawn(move || batch.into_iter().for_each(fill));
            }
        });
        #[cfg(target_arch = "wasm32")]
        out.chunks_mut(CHUNK).enumerate().for_each(fill);
        out
    }
}

/// `--dtype`: f32 (fidelity, the paper's setting), f16, q8, q4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// docs/MODEL.md: q4 = Q4G32 decoder linears, Q8G32 vocabulary matrices, f16 vision and projector;
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
    pub source: &'a dyn WeightSource,
    pub policy: WeightDType,
    pub gpu_bytes: u64,
    /// Called after each tensor with its name (progress bars).
    pub on_tensor: Option<&'a dyn Fn(&str)>,
    /// f32 bytes converted at once for a large matrix ([`CHUNK_F32_BYTES`] by default).
    pub chunk_f32_bytes: usize,
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

    /// The `[rows, cols]` matrix `name` (or several stacked by rows) in the role's dtype. From a
    /// source that reads rows, a matrix larger than a chunk is converted and written a slice of
    /// rows at a time into buffers laid out as a whole upload would be.
    pub async fn matrix(&mut self, names: &[&str], rows: &[usize], cols: usize, role: Role) -> Result<GpuMatrix, ModelError> {
        let total: usize = rows.iter().sum();
        let dtype = gpu_dtype(self.policy, role, cols);
        // Stored shapes first: a config that claims sizes the file does not hold must not
        // allocate GPU memory for them.
        for (name, &r) in names.iter().zip(rows) {
            self.source.check_shape(name, &[r, cols])?;
        }
        let chunk = (self.chunk_f32_bytes / (4 * cols).max(1)).max(1);
        let m = if self.source.reads_rows() && total > chunk && GpuMatrix::rows_writable(cols, dtype) {
            let m = GpuMatrix::allocate(self.ctx, total, cols, dtype, names[0])?;
            let mut at = 0;
            for (name, &r) in names.iter().zip(rows) {
                let mut start = 0;
                while start < r {
                    let end = (start + chunk).min(r);
                    let part = self.source.f32_rows(name, &[r, cols], start, end).await?;
                    m.write_rows(self.ctx, at + start, &HostMatrix::from_f32(end - start, cols, &part, dtype)?)?;
                    start = end;
                }
                at += r;
            }
            m
        } else {
            let mut data = Vec::with_capacity(total * cols);
            for (name, &r) in names.iter().zip(rows) {
                data.extend(self.source.f32(name, &[r, cols]).await?);
            }
            let host = HostMatrix::from_f32(total, cols, &data, dtype)?;
            drop(data);
            GpuMatrix::upload(self.ctx, &host, names[0])?
        };
        self.gpu_bytes += dtype.row_bytes(cols) as u64 * total as u64;
        names.iter().for_each(|n| self.done(n));
        Ok(m)
    }

    /// The `[rows, blocks * cols]` matrix `name` cut along its columns into `blocks` matrices of
    /// `[rows, cols]`, in the role's dtype: linear_1 of a projector over several concatenated
    /// vision states, applied block by block so the states need not be concatenated. Read whole
    /// (projectors are tens of MB at most).
    pub async fn column_blocks(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        blocks: usize,
        role: Role,
    ) -> Result<Vec<GpuMatrix>, ModelError> {
        let width = blocks * cols;
        let dtype = gpu_dtype(self.policy, role, cols);
        let data = self.source.f32(name, &[rows, width]).await?;
        let mut out = Vec::with_capacity(blocks);
        for b in 0..blocks {
            let part: Vec<f32> = data.chunks_exact(width).flat_map(|row| &row[b * cols..(b + 1) * cols]).copied().collect();
            out.push(GpuMatrix::upload(self.ctx, &HostMatrix::from_f32(rows, cols, &part, dtype)?, name)?);
            self.gpu_bytes += dtype.row_bytes(cols) as u64 * rows as u64;
        }
        self.done(name);
        Ok(out)
    }

    /// A vector (norm weight, bias) in f32.
    pub async fn vector(&mut self, name: &str, len: usize) -> Result<GpuTensor, ModelError> {
        let v = self.source.f32(name, &[len]).await?;
        self.gpu_bytes += 4 * len as u64;
        self.done(name);
        Ok(GpuTensor::from_f32(self.ctx, &v, &[len], name)?)
    }

    /// Any tensor in f32 with the given shape (position and class embeddings).
    pub async fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<GpuTensor, ModelError> {
        let v = self.source.f32(name, shape).await?;
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
