//! One encoder function per kernel, named like its CPU reference in `llava_lens_tensor::cpu` and
//! its entry point in `shaders/`. Each checks shapes and limits, then records one or more
//! dispatches; outputs are passed in so callers (and guard-region tests) own every allocation.

mod activation;
mod add;
mod attention;
mod copy;
mod explain;
mod linear;
mod norm;
mod reduce;
mod rope;
mod segments;

pub use activation::{gelu, gelu_tanh, quick_gelu, silu_mul};
pub use add::{bias_add, blend_columns, residual_add};
pub use attention::{
    AttentionKernel, FLASH_MAX_HEAD_DIM, KeyMask, MAX_HEAD_DIM, MAX_KEYS, attention, attention_capture, attention_using, attention_with,
};
pub use copy::copy;
pub use explain::{fixed_rms_norm, scatter_heads, weighted_values};
pub use linear::{
    GemmTile, MatvecKernel, embedding, im2col, matmul, matmul_tiled, matvec, matvec_lanes, matvec_using, matvec_with_lanes, patch_embed,
};
pub use norm::{layer_norm, rms_norm};
pub use reduce::{argmax, log_softmax_gather, token_rank, top_k};
pub use rope::rope;
pub use segments::{Segments, attention_segments, rope_rows};

use crate::error::ensure;
use crate::{GpuError, GpuTensor};

/// Workgroups of `per_group` threads covering `n` items.
pub(crate) fn groups_for(n: usize, per_group: usize) -> u32 {
    n.div_ceil(per_group) as u32
}

/// Fails unless `t` holds at least `n` elements.
pub(crate) fn need(op: &'static str, what: &str, t: &GpuTensor, n: usize) -> Result<(), GpuError> {
    ensure(t.len() >= n, op, || format!("{what} holds {} elements, needs {n}", t.len()))
}

/// Values above u32 cannot be addressed by the shaders.
pub(crate) fn u32_of(op: &'static str, v: usize) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::shape(op, format!("{v} does not fit in u32")))
}
