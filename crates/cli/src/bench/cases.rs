//! What `bench` measures: Llava-1.5-7B's decode matvecs and prefill GEMMs in every weight dtype,
//! the attention and vocabulary reductions around them, and buffer-copy bandwidth as the ceiling.

use std::cell::Cell;

use llava_lens_gpu::ops::{self, AttentionKernel, GemmTile, MatvecKernel};
use llava_lens_gpu::{GpuContext, GpuError, GpuMatrix, GpuTensor, Recorder};
use llava_lens_tensor::cpu::{self, AttentionShape};
use llava_lens_tensor::{DType, HostMatrix, Rng};
use serde_json::{Value, json};

const DTYPES: [DType; 4] = [DType::F32, DType::F16, DType::Q8G32, DType::Q4G32];
const L2_DEFEAT_BYTES: u64 = 160 << 20;

#[derive(Debug, Clone)]
pub enum Case {
    /// Device-local copy of `bytes` by the `copy` kernel: the bandwidth ceiling.
    Copy {
        bytes: u64,
    },
    /// The same through `copy_buffer_to_buffer` (a DMA engine on some drivers), for reference.
    CopyBuffer {
        bytes: u64,
    },
    Matvec {
        n: usize,
        k: usize,
        dtype: DType,
        kernel: MatvecKernel,
    },
    Matmul {
        m: usize,
        n: usize,
        k: usize,
        dtype: DType,
        tile: GemmTile,
    },
    Attention {
        queries: usize,
        keys: usize,
        heads: usize,
        head_dim: usize,
        kernel: AttentionKernel,
    },
    LogSoftmaxGather {
        rows: usize,
        vocab: usize,
    },
}

/// Llava-1.5-7B shapes (`quick` divides every dimension by 8 for software adapters). The subgroup
/// matvec, the integer-dot matvec (quantised weights), the K-32 and f16 GEMMs run beside the core
/// kernels where the device can run them.
pub fn all(ctx: &GpuContext, quick: bool) -> Vec<Case> {
    let subgroups = MatvecKernel::for_context(ctx) == MatvecKernel::Subgroup;
    let d = |x: usize| if quick { x.div_ceil(8) } else { x };
    let copy_bytes = if quick { 16 << 20 } else { 512 << 20 };
    let mut cases = vec![Case::Copy { bytes: copy_bytes }, Case::CopyBuffer { bytes: copy_bytes }];
    // q/k/v/o and down_proj inputs, gate/up, down_proj, lm_head.
    for (n, k) in [(4096, 4096), (11008, 4096), (4096, 11008), (32064, 4096)] {
        for dtype in DTYPES {
            cases.push(Case::Matvec { n: d(n), k: d(k), dtype, kernel: MatvecKernel::Shared });
            if subgroups {
                cases.push(Case::Matvec { n: d(n), k: d(k), dtype, kernel: MatvecKernel::Subgroup });
            }
            if dtype.is_quantized() {
                cases.push(Case::Matvec { n: d(n), k: d(k), dtype, kernel: MatvecKernel::Dot4 });
            }
        }
    }
    // Prefill of ~600 tokens (576 image patches + prompt): q/k/v/o and gate/up.
    for (n, k) in [(4096, 4096), (11008, 4096)] {
        for dtype in DTYPES {
            for tile in [GemmTile::Small, GemmTile::Wide, GemmTile::SmallK32, GemmTile::SmallF16] {
                if tile.runs(ctx, d(k)) {
                    cases.push(Case::Matmul { m: d(600), n: d(n), k: d(k), dtype, tile });
                }
            }
        }
    }
    let heads = if quick { 4 } else { 32 };
    // The paper's prompt (616 positions) on both kernels, prefill and decode; and a prefill past
    // the per-query kernel's 3072 keys (Llava-NeXT's 2880 image tokens and a prompt), flash only.
    for kernel in [AttentionKernel::Flash, AttentionKernel::PerQuery] {
        cases.push(Case::Attention { queries: d(616), keys: d(616), heads, head_dim: 128, kernel });
    }
    for kernel in [AttentionKernel::SplitKeys, AttentionKernel::PerQuery, AttentionKernel::Flash] {
        cases.push(Case::Attention { queries: 1, keys: d(616), heads, head_dim: 128, kernel });
    }
    cases.push(Case::Attention { queries: 1, keys: d(3200), heads, head_dim: 128, kernel: AttentionKernel::SplitKeys });
    cases.push(Case::Attention { queries: d(3200), keys: d(3200), heads, head_dim: 128, kernel: AttentionKernel::Flash });
    // The explanation's batched head scores: 32 x 32 heads + 32 baselines over the vocabulary.
    cases.push(Case::LogSoftmaxGather { rows: d(1056), vocab: d(32064) });
    cases
}

/// Encodes one instance of a measured op.
pub type RecordFn = Box<dyn Fn(&mut Recorder<'_>) -> Result<(), GpuError>>;

/// A measurement ready to run: `record` encodes one instance of the op.
pub struct Setup {
    /// Kernel configuration measured (tile, lanes), when the op has several.
    pub variant: Option<String>,
    pub per_sample: usize,
    pub flops: u64,
    pub bytes: u64,
    /// Whether GPU timestamps can bracket the work (copies are outside compute passes).
    pub in_compute_pass: bool,
    pub record: RecordFn,
    pub cpu: Option<Box<dyn Fn()>>,
}

fn weights(ctx: &GpuContext, n: usize, k: usize, dtype: DType, seed: u64) -> Result<(HostMatrix, GpuMatrix), GpuError> {
    let host = HostMatrix::from_f32(n, k, &Rng::new(seed).uniform(n * k, -0.05, 0.05), dtype)?;
    let gpu = GpuMatrix::upload(ctx, &host, "bench weight")?;
    Ok((host, gpu))
}

fn weight_bytes(w: &GpuMatrix) -> u64 {
    w.blocks.iter().map(|b| b.values_size + b.scales.map_or(0, |s| s.1)).sum()
}

impl Case {
    pub fn kernel(&self) -> &'static str {
        match self {
            Case::Copy { .. } => "copy",
            Case::CopyBuffer { .. } => "copy_buffer_to_buffer",
            Case::Matvec { kernel: MatvecKernel::Shared, .. } => "matvec",
            Case::Matvec { kernel: MatvecKernel::Subgroup, .. } => "matvec_subgroup",
            Case::Matvec { kernel: MatvecKernel::Dot4, .. } => "matvec_dot4",
            Case::Matmul { tile: GemmTile::Small, .. } => "matmul",
            Case::Matmul { tile: GemmTile::Wide, .. } => "matmul_wide",
            Case::Matmul { tile: GemmTile::SmallK32, .. } => "matmul_k32",
            Case::Matmul { tile: GemmTile::SmallF16, .. } => "matmul_f16",
            Case::Attention { queries: 1, .. } => "attention_decode",
            Case::Attention { .. } => "attention_prefill",
            Case::LogSoftmaxGather { .. } => "log_softmax_gather",
        }
    }

    pub fn shape(&self) -> Value {
        match *self {
            Case::Copy { bytes } | Case::CopyBuffer { bytes } => json!({ "bytes": bytes }),
            Case::Matvec { n, k, .. } => json!({ "n": n, "k": k }),
            Case::Matmul { m, n, k, .. } => json!({ "m": m, "n": n, "k": k }),
            Case::Attention { queries, keys, heads, head_dim, .. } => {
                json!({ "queries": queries, "keys": keys, "heads": heads, "head_dim": head_dim })
            }
            Case::LogSoftmaxGather { rows, vocab } => json!({ "rows": rows, "vocab": vocab }),
        }
    }

    pub fn dtype(&self) -> &'static str {
        match self {
            Case::Matvec { dtype, .. } | Case::Matmul { dtype, .. } => dtype.name(),
            _ => "f32",
        }
    }

    pub fn label(&self) -> String {
        format!("{} {} {}", self.kernel(), self.shape(), self.dtype())
    }

    /// Judged by bytes moved rather than FLOPs.
    pub fn bandwidth_bound(&self) -> bool {
        matches!(self, Case::Matvec { .. } | Case::Attention { queries: 1, .. } | Case::LogSoftmaxGather { .. })
    }

    pub fn setup(&self, ctx: &GpuContext, matvec_lanes: Option<u32>) -> Result<Setup, GpuError> {
        Ok(match *self {
            Case::Copy { bytes } | Case::CopyBuffer { bytes } => {
                let src = GpuTensor::zeros(ctx, &[bytes as usize / 4], "copy src");
                let dst = GpuTensor::zeros(ctx, &[bytes as usize / 4], "copy dst");
                let kernel = matches!(self, Case::Copy { .. });
                Setup {
                    variant: None,
                    per_sample: 10,
                    flops: 0,
                    bytes: 2 * bytes,
                    in_compute_pass: kernel,
                    record: Box::new(move |rec| {
                        if kernel {
                            ops::copy(rec, &src, &dst)
                        } else {
                            rec.copy(src.buffer(), 0, dst.buffer(), 0, bytes);
                            Ok(())
                        }
                    }),
                    cpu: None,
                }
            }
            Case::Matvec { n, k, dtype, kernel } => {
                let (host, w) = weights(ctx, n, k, dtype, 1)?;
                // Enough copies of the matrix to overflow a large GPU's L2 (50 MB on an H100),
                // cycled through so every dispatch reads from memory as decode does.
                let copies = (L2_DEFEAT_BYTES / weight_bytes(&w).max(1)).clamp(1, 16) as usize;
                let mut mats = vec![w.clone()];
                for _ in 1..copies {
                    mats.push(GpuMatrix::upload(ctx, &host, "bench weight")?);
                }
                let next = Cell::new(0usize);
                let x = Rng::new(2).uniform(k, -1.0, 1.0);
                let xt = GpuTensor::from_f32(ctx, &x, &[k], "x")?;
                let y = GpuTensor::zeros(ctx, &[n], "y");
                let lanes = matvec_lanes.unwrap_or_else(|| ops::matvec_lanes(k));
                Setup {
                    variant: Some(format!("{lanes} lanes")),
                    per_sample: 50,
                    flops: 2 * (n * k) as u64,
                    bytes: weight_bytes(&w) + 4 * (n + k) as u64,
                    in_compute_pass: true,
                    record: Box::new(move |rec| {
                        next.set((next.get() + 1) % mats.len());
                        ops::matvec_using(rec, &xt, &mats[next.get()], &y, lanes, kernel)
                    }),
                    cpu: Some(Box::new(move || drop(cpu::matvec(&x, &host)))),
                }
            }
            Case::Matmul { m, n, k, dtype, tile } => {
                let (host, w) = weights(ctx, n, k, dtype, 3)?;
                let x = Rng::new(4).uniform(m * k, -1.0, 1.0);
                let xt = GpuTensor::from_f32(ctx, &x, &[m, k], "x")?;
                let y = GpuTensor::zeros(ctx, &[m, n], "y");
                Setup {
                    variant: Some(format!("{tile:?} tile")),
                    per_sample: 5,
                    flops: 2 * (m * n * k) as u64,
                    bytes: weight_bytes(&w) + 4 * (m * k + m * n) as u64,
                    in_compute_pass: true,
                    record: Box::new(move |rec| ops::matmul_tiled(rec, &xt, &w, &y, tile)),
                    cpu: Some(Box::new(move || drop(cpu::matmul(&x, m, &host)))),
                }
            }
            Case::Attention { queries, keys, heads, head_dim, kernel } => {
                let s = AttentionShape::packed(queries, keys, heads, heads, head_dim, true);
                let mut rng = Rng::new(5);
                let (q, kk, v) = (
                    rng.normal(queries * heads * head_dim, 1.0),
                    rng.normal(keys * heads * head_dim, 1.0),
                    rng.normal(keys * heads * head_dim, 1.0),
                );
                let (qt, kt, vt) = (
                    GpuTensor::from_f32(ctx, &q, &[queries, heads * head_dim], "q")?,
                    GpuTensor::from_f32(ctx, &kk, &[keys, heads * head_dim], "k")?,
                    GpuTensor::from_f32(ctx, &v, &[keys, heads * head_dim], "v")?,
                );
                let out = GpuTensor::zeros(ctx, &[queries, heads * head_dim], "out");
                // Visible (query, key) pairs under the causal mask; 2 FLOPs each for QK^T and PV.
                let pairs: u64 = (0..queries).map(|i| s.visible_keys(i) as u64).sum();
                let variant = match kernel {
                    AttentionKernel::Flash => "flash",
                    AttentionKernel::PerQuery => "per-query",
                    AttentionKernel::SplitKeys => "split-keys",
                };
                Setup {
                    variant: Some(variant.into()),
                    per_sample: if queries == 1 { 50 } else { 5 },
                    flops: 4 * pairs * (heads * head_dim) as u64,
                    bytes: 4 * ((queries + 2 * keys) * heads * head_dim + queries * heads * head_dim) as u64,
                    in_compute_pass: true,
                    record: Box::new(move |rec| ops::attention_using(rec, kernel, &qt, &kt, &vt, &out, &s, None, None)),
                    cpu: Some(Box::new(move || drop(cpu::attention(&q, &kk, &v, s)))),
                }
            }
            Case::LogSoftmaxGather { rows, vocab } => {
                let mut rng = Rng::new(6);
                let x = rng.normal(rows * vocab, 3.0);
                let idx: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
                let (xt, it) =
                    (GpuTensor::from_f32(ctx, &x, &[rows, vocab], "logits")?, GpuTensor::from_u32(ctx, &idx, &[rows, 1], "targets")?);
                let out = GpuTensor::zeros(ctx, &[rows], "log-probs");
                Setup {
                    variant: None,
                    per_sample: 10,
                    flops: 3 * (rows * vocab) as u64,
                    bytes: 4 * (rows * vocab) as u64,
                    in_compute_pass: true,
                    record: Box::new(move |rec| ops::log_softmax_gather(rec, &xt, vocab, &it, &out)),
                    cpu: Some(Box::new(move || drop(cpu::log_softmax_gather(&x, vocab, &idx, 1)))),
                }
            }
        })
    }
}
