/// HF `LlamaRMSNorm.forward`: `weight * (x * rsqrt(mean(x^2) + eps))`, row by row (`x` is
/// `[rows, weight.len()]`).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks_exact(d) {
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
        y.extend(row.iter().zip(weight).map(|(&v, &w)| w * (v * inv)));
    }
    y
}

/// `nn.LayerNorm` (biased variance, as torch): `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks_exact(d) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        y.extend(row.iter().zip(weight.iter().zip(bias)).map(|(&v, (&w, &b))| ((v as f64 - mean) * inv) as f32 * w + b));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_by_hand() {
        let y = rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 8.0 / r).abs() < 1e-6);
        let z = layer_norm(&[1.0, 3.0], &[1.0, 1.0], &[0.5, 0.5], 0.0);
        assert!((z[0] + 0.5).abs() < 1e-6 && (z[1] - 1.5).abs() < 1e-6);
    }
}
