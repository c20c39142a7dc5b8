use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::Rng;
use llava_lens_tensor::cpu::{self, RopeShape};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx};

#[test]
fn rope_matches_cpu() {
    let cases = [
        // (rows, heads, head_dim, row_stride, col_offset, pos_offset, theta)
        (1, 1, 2, 2, 0, 0, 10000.0),
        (7, 3, 8, 24, 0, 0, 10000.0),
        // K inside a fused QKV row [q: 4x16 | k: 2x16 | v: 2x16], decoding at position 611.
        (3, 2, 16, 128, 64, 611, 10000.0),
        // Llava's head_dim 128 at positions past 2000, another theta.
        (2, 2, 128, 256, 0, 2047, 500000.0),
    ];
    for (i, &(n_rows, n_heads, head_dim, row_stride, col_offset, pos_offset, theta)) in cases.iter().enumerate() {
        let s = RopeShape { n_rows, n_heads, head_dim, row_stride, col_offset, pos_offset, theta };
        let x = Rng::new(i as u64).normal(n_rows * row_stride, 1.0);
        let out = Guarded::with_f32("rope x", &x, &[n_rows, row_stride]);
        let mut rec = Recorder::new(ctx(), "rope");
        ops::rope(&mut rec, out.tensor(), s).unwrap();
        rec.submit();
        let mut want = x.clone();
        cpu::rope(&mut want, s);
        // The angle pos * inv_freq reaches ~2000 rad: a 1-ulp difference in the GPU's pow moves
        // it by ~1e-4 rad, hence the absolute tolerance at long positions.
        let tol = if pos_offset > 1000 { Tol::new(5e-4, 1e-4) } else { Tol::new(2e-5, 2e-5) };
        assert_close(&format!("rope case {i}"), &out.read(), &want, tol);
    }
}
