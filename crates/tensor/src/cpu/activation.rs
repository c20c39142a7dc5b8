/// `nn.GELU()` / `ACT2FN["gelu"]` (the exact erf form, used by the Llava projector).
pub fn gelu(x: &mut [f32]) {
    for v in x {
        *v = (0.5 * *v as f64 * (1.0 + libm::erf(*v as f64 / std::f64::consts::SQRT_2))) as f32;
    }
}

/// `ACT2FN["gelu_pytorch_tanh"]` (SigLIP's MLP): `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`,
/// in f64 with tanh itself (the shader uses the sigmoid identity instead).
pub fn gelu_tanh(x: &mut [f32]) {
    for v in x {
        let t = *v as f64;
        *v = (0.5 * t * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (t + 0.044715 * t * t * t)).tanh())) as f32;
    }
}

/// `ACT2FN["quick_gelu"]` (CLIP's MLP): `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: &mut [f32]) {
    for v in x {
        let t = *v as f64;
        *v = (t / (1.0 + (-1.702 * t).exp())) as f32;
    }
}

/// LlamaMLP's `act_fn(gate_proj(x)) * up_proj(x)` with SiLU, on the fused gate/up output:
/// `x` is `[rows, 2n]` with gate in columns `[0, n)` and up in `[n, 2n)`; returns `[rows, n]`.
pub fn silu_mul(x: &[f32], n: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len() / 2);
    for row in x.chunks_exact(2 * n) {
        let (gate, up) = row.split_at(n);
        y.extend(gate.iter().zip(up).map(|(&g, &u)| ((g as f64 / (1.0 + (-g as f64).exp())) * u as f64) as f32));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_by_hand() {
        let mut g = [0.0f32, 1.0, -1.0];
        gelu(&mut g);
        assert!((g[0]).abs() < 1e-7 && (g[1] - 0.841_344_7).abs() < 1e-6 && (g[2] + 0.158_655_3).abs() < 1e-6);
        // gelu_tanh(1) = 0.5 (1 + tanh(0.7978846 * 1.044715)) = 0.8411920; far out it is x or 0.
        let mut t = [1.0f32, 30.0, -30.0];
        gelu_tanh(&mut t);
        assert!((t[0] - 0.841_192).abs() < 1e-6 && t[1] == 30.0 && t[2] == 0.0, "{t:?}");
        let mut q = [1.0f32];
        quick_gelu(&mut q);
        assert!((q[0] - 1.0 / (1.0 + (-1.702f32).exp())).abs() < 1e-6);
        let s = silu_mul(&[1.0, 2.0, 3.0, 4.0], 2);
        assert!((s[0] - 3.0 * 0.731_058_6).abs() < 1e-5 && (s[1] - 4.0 * 1.761_594_2).abs() < 1e-5);
    }
}
