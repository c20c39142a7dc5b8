//! References of the attribution's reshaping kernels (`shaders/explain.wgsl`); the formulas are
//! docs/METHOD.md sec. 3-4, after the authors' notebook (zepingyu0512/llava-mechanism).

/// The authors' projection scale frozen at the last layer's output: `x[r] * weight /
/// sqrt(mean(reference^2) + eps)` for every row (eps 1e-6 in the method).
pub fn fixed_rms_norm(x: &[f32], weight: &[f32], reference: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    let ms = reference.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
    let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
    x.chunks_exact(d).flat_map(|row| row.iter().zip(weight).map(move |(&v, &w)| v * w * inv)).collect()
}

/// Per-head vectors `z [heads * head_dim]` as the block-diagonal `[heads, heads * head_dim]`.
pub fn scatter_heads(z: &[f32], head_dim: usize) -> Vec<f32> {
    let n = z.len();
    let heads = n / head_dim;
    let mut y = vec![0.0; heads * n];
    for h in 0..heads {
        y[h * n + h * head_dim..h * n + (h + 1) * head_dim].copy_from_slice(&z[h * head_dim..(h + 1) * head_dim]);
    }
    y
}

/// `alpha_j v_j` of query head `head` (reading kv head `kv_head` of `v [rows, v_stride]`) placed
/// in that head's columns of a `[rows, heads * head_dim]` matrix.
pub fn weighted_values(v: &[f32], v_stride: usize, alpha: &[f32], head: usize, kv_head: usize, heads: usize, head_dim: usize) -> Vec<f32> {
    let cols = heads * head_dim;
    let mut y = vec![0.0; alpha.len() * cols];
    for (j, &a) in alpha.iter().enumerate() {
        for d in 0..head_dim {
            y[j * cols + head * head_dim + d] = a * v[j * v_stride + kv_head * head_dim + d];
        }
    }
    y
}
