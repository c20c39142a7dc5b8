//! CPU reference of every kernel: plain f32 loops, reductions accumulated in f64, written to be
//! checked by eye against the HF line each mirrors. Names match `shaders/<name>.wgsl` and
//! `gpu::ops::<name>`. These are the ground truth of the GPU tests, not a fast path.

mod activation;
mod attention;
mod explain;
mod linear;
mod norm;
mod reduce;
mod rope;

pub use activation::{gelu, gelu_tanh, quick_gelu, silu_mul};
pub use attention::{AttentionShape, attention, attention_masked, attention_segments};
pub use explain::{fixed_rms_norm, scatter_heads, weighted_values};
pub use linear::{PatchShape, bias_add, blend_columns, embedding, im2col, matmul, matvec, patch_embed, residual_add};
pub use norm::{layer_norm, rms_norm};
pub use reduce::{argmax, log_softmax_gather, token_rank, top_k};
pub use rope::{RopeShape, rope, rope_rows};
