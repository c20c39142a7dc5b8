/// Where RoPE applies: `n_rows` token rows of `row_stride` elements; the heads start at column
/// `col_offset` (so Q and K inside a fused QKV row can be rotated in place). Row `r` has position
/// `pos_offset + r`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeShape {
    pub n_rows: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub row_stride: usize,
    pub col_offset: usize,
    pub pos_offset: usize,
    pub theta: f32,
}

/// HF `LlamaRotaryEmbedding` + `apply_rotary_pos_emb` (rotate_half convention: element `i` pairs
/// with `i + head_dim/2`), computed in f32 as HF does in an fp32 model:
/// `inv_freq = 1 / theta^(2i/d)`, `angle = pos * inv_freq`, `x*cos + rotate_half(x)*sin`.
pub fn rope(x: &mut [f32], s: RopeShape) {
    let half = s.head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / s.theta.powf((2 * i) as f32 / s.head_dim as f32)).collect();
    for r in 0..s.n_rows {
        let pos = (s.pos_offset + r) as f32;
        for h in 0..s.n_heads {
            let base = r * s.row_stride + s.col_offset + h * s.head_dim;
            for i in 0..half {
                let (sin, cos) = (pos * inv_freq[i]).sin_cos();
                let (x1, x2) = (x[base + i], x[base + i + half]);
                x[base + i] = x1 * cos - x2 * sin;
                x[base + i + half] = x2 * cos + x1 * sin;
            }
        }
    }
}

/// [`rope`] with row `r` at position `positions[r]` (rows of several sequences stacked, as the
/// batched passes of activation patching hold them); `s.pos_offset` is ignored.
pub fn rope_rows(x: &mut [f32], s: RopeShape, positions: &[usize]) {
    assert_eq!(positions.len(), s.n_rows, "one position per row");
    for (r, &pos) in positions.iter().enumerate() {
        let row = RopeShape { n_rows: 1, pos_offset: pos, ..s };
        rope(&mut x[r * s.row_stride..], row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_rotation_keeps_norm() {
        let s = RopeShape { n_rows: 2, n_heads: 1, head_dim: 4, row_stride: 4, col_offset: 0, pos_offset: 0, theta: 10000.0 };
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0];
        rope(&mut x, s);
        assert_eq!(&x[..4], &[1.0, 2.0, 3.0, 4.0]);
        // Position 1, pair (0, 2) rotates by 1 rad.
        assert!((x[4] - (1.0 * 1f32.cos() - 3.0 * 1f32.sin())).abs() < 1e-6);
        let n0: f32 = [1.0f32, 3.0].iter().map(|v| v * v).sum();
        assert!((x[4] * x[4] + x[6] * x[6] - n0).abs() < 1e-5);
    }
}
