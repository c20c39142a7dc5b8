use crate::{HostMatrix, TensorError};

/// `nn.Embedding`: row `ids[t]` of `weight` for each token. Ids outside the table are an error.
pub fn embedding(ids: &[u32], weight: &HostMatrix) -> Result<Vec<f32>, TensorError> {
    let mut out = Vec::with_capacity(ids.len() * weight.cols);
    for (pos, &id) in ids.iter().enumerate() {
        if id as usize >= weight.rows {
            return Err(TensorError::TokenId { id, pos, vocab: weight.rows });
        }
        out.extend(weight.row(id as usize));
    }
    Ok(out)
}

/// `nn.Linear` without bias: `y[m, n] = sum_k x[m, k] * W[n, k]`, W decoded exactly as the GPU
/// decodes it (f16 widened, Q8/Q4 dequantised), accumulated in f64.
pub fn matmul(x: &[f32], m: usize, weight: &HostMatrix) -> Vec<f32> {
    let (n, k) = (weight.rows, weight.cols);
    assert_eq!(x.len(), m * k, "matmul: x is not [{m}, {k}]");
    let w = weight.to_f32();
    let mut y = vec![0.0f32; m * n];
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            y[i * n + j] = xr.iter().zip(wr).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32;
        }
    }
    y
}

/// The decode case of [`matmul`]: one activation row.
pub fn matvec(x: &[f32], weight: &HostMatrix) -> Vec<f32> {
    matmul(x, 1, weight)
}

/// `y[m, n] += b[n]` (the bias of `nn.Linear`).
pub fn bias_add(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        for (v, bv) in row.iter_mut().zip(b) {
            *v += bv;
        }
    }
}

/// `a[r, c] = a[r, c] * keep[c] + fill[c]` for every row (head ablation: keep 0 replaces a
/// column by its fill, keep 1 leaves it).
pub fn blend_columns(a: &mut [f32], keep: &[f32], fill: &[f32]) {
    assert_eq!(keep.len(), fill.len(), "blend_columns: keep and fill differ in length");
    for row in a.chunks_exact_mut(keep.len()) {
        for ((v, k), f) in row.iter_mut().zip(keep).zip(fill) {
            *v = *v * k + f;
        }
    }
}

/// `a += b` (the residual connection `hidden_states = residual + hidden_states`).
pub fn residual_add(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "residual_add: lengths differ");
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Geometry of a ViT patch embedding (`nn.Conv2d(C, D, kernel=P, stride=P, bias=False)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: usize,
}

impl PatchShape {
    pub fn grid_h(&self) -> usize {
        self.height / self.patch
    }
    pub fn grid_w(&self) -> usize {
        self.width / self.patch
    }
    pub fn n_patches(&self) -> usize {
        self.grid_h() * self.grid_w()
    }
    /// Length of one column: the conv weight flattened as `[C, P, P]`.
    pub fn patch_len(&self) -> usize {
        self.channels * self.patch * self.patch
    }
}

/// Patches of a CHW image as rows, in row-major patch order (patch `p` at grid row `p / grid_w`),
/// each flattened like the conv weight `[C, kh, kw]`, so `conv(x) = im2col(x) @ W^T`.
pub fn im2col(pixels: &[f32], s: PatchShape) -> Vec<f32> {
    assert_eq!(pixels.len(), s.channels * s.height * s.width, "im2col: pixels are not [C, H, W]");
    let (p, gw) = (s.patch, s.grid_w());
    let mut cols = Vec::with_capacity(s.n_patches() * s.patch_len());
    for patch in 0..s.n_patches() {
        let (py, px) = (patch / gw * p, patch % gw * p);
        for c in 0..s.channels {
            for ky in 0..p {
                for kx in 0..p {
                    cols.push(pixels[(c * s.height + py + ky) * s.width + px + kx]);
                }
            }
        }
    }
    cols
}

/// CLIP `patch_embedding`: conv 14x14 stride 14 as im2col + matmul. Output `[n_patches, D]`.
pub fn patch_embed(pixels: &[f32], s: PatchShape, weight: &HostMatrix) -> Vec<f32> {
    matmul(&im2col(pixels, s), s.n_patches(), weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn matmul_small_by_hand() {
        let w = HostMatrix::from_f32(2, 3, &[1.0, 2.0, 3.0, -1.0, 0.5, 0.0], DType::F32).unwrap();
        assert_eq!(matmul(&[1.0, 1.0, 1.0, 2.0, 0.0, -1.0], 2, &w), vec![6.0, -0.5, -1.0, -2.0]);
    }

    #[test]
    fn im2col_matches_a_direct_convolution() {
        let s = PatchShape { channels: 2, height: 4, width: 6, patch: 2 };
        let px: Vec<f32> = (0..48).map(|i| i as f32 * 0.5 - 3.0).collect();
        let wv: Vec<f32> = (0..3 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let w = HostMatrix::from_f32(3, 8, &wv, DType::F32).unwrap();
        let y = patch_embed(&px, s, &w);
        for patch in 0..s.n_patches() {
            for d in 0..3 {
                let mut acc = 0.0;
                for c in 0..2 {
                    for ky in 0..2 {
                        for kx in 0..2 {
                            let (yy, xx) = (patch / 3 * 2 + ky, patch % 3 * 2 + kx);
                            acc += px[(c * 4 + yy) * 6 + xx] * wv[d * 8 + c * 4 + ky * 2 + kx];
                        }
                    }
                }
                assert!((y[patch * 3 + d] - acc).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn embedding_rejects_ids_outside_the_table() {
        let w = HostMatrix::from_f32(2, 2, &[1.0, 2.0, 3.0, 4.0], DType::F32).unwrap();
        assert_eq!(embedding(&[1, 0], &w).unwrap(), vec![3.0, 4.0, 1.0, 2.0]);
        assert_eq!(embedding(&[0, 2], &w), Err(TensorError::TokenId { id: 2, pos: 1, vocab: 2 }));
    }
}
