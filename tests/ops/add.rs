use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::{Rng, cpu};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

/// Element counts: 1, primes, around the 256-thread workgroup.
const LENGTHS: [usize; 5] = [1, 7, 255, 257, 1031];

#[test]
fn residual_add_matches_cpu() {
    for (i, &n) in LENGTHS.iter().enumerate() {
        let mut rng = Rng::new(i as u64);
        let (a, b) = (rng.normal(n, 3.0), rng.normal(n, 3.0));
        let out = Guarded::with_f32("residual_add a", &a, &[n]);
        let mut rec = Recorder::new(ctx(), "residual_add");
        ops::residual_add(&mut rec, out.tensor(), &upload(&b, &[n])).unwrap();
        rec.submit();
        let mut want = a.clone();
        cpu::residual_add(&mut want, &b);
        assert_close(&format!("residual_add {n}"), &out.read(), &want, Tol::new(0.0, 0.0));
    }
}

#[test]
fn bias_add_matches_cpu() {
    for (i, &(rows, cols)) in [(1usize, 1usize), (3, 7), (13, 67), (2, 1031)].iter().enumerate() {
        let mut rng = Rng::new(50 + i as u64);
        let (a, b) = (rng.normal(rows * cols, 1.0), rng.normal(cols, 1.0));
        let out = Guarded::with_f32("bias_add a", &a, &[rows, cols]);
        let mut rec = Recorder::new(ctx(), "bias_add");
        ops::bias_add(&mut rec, out.tensor(), &upload(&b, &[cols])).unwrap();
        rec.submit();
        let mut want = a.clone();
        cpu::bias_add(&mut want, &b);
        assert_close(&format!("bias_add {rows}x{cols}"), &out.read(), &want, Tol::new(0.0, 0.0));
    }
}

/// Head ablation's column blend: removed columns become exactly their fill, kept ones stay
/// bit-identical (keep 1, fill 0), on rows whose length is not a multiple of the workgroup.
#[test]
fn blend_columns_matches_cpu() {
    for (i, &(rows, heads, head_dim)) in [(1usize, 1usize, 1usize), (5, 3, 7), (13, 4, 16), (3, 9, 33)].iter().enumerate() {
        let cols = heads * head_dim;
        let mut rng = Rng::new(90 + i as u64);
        let a = rng.normal(rows * cols, 2.0);
        let removed: Vec<bool> = (0..heads).map(|h| (h + i) % 2 == 0).collect();
        let means = rng.normal(cols, 1.0);
        let keep: Vec<f32> = (0..cols).map(|c| if removed[c / head_dim] { 0.0 } else { 1.0 }).collect();
        let fill: Vec<f32> = (0..cols).map(|c| if removed[c / head_dim] { means[c] } else { 0.0 }).collect();
        let out = Guarded::with_f32("blend_columns a", &a, &[rows, cols]);
        let mut rec = Recorder::new(ctx(), "blend_columns");
        ops::blend_columns(&mut rec, out.tensor(), &upload(&[keep.clone(), fill.clone()].concat(), &[2 * cols])).unwrap();
        rec.submit();
        let mut want = a.clone();
        cpu::blend_columns(&mut want, &keep, &fill);
        let got = out.read();
        assert_close(&format!("blend_columns {rows}x{heads}x{head_dim}"), &got, &want, Tol::new(0.0, 0.0));
        for (j, (&g, &x)) in got.iter().zip(&a).enumerate() {
            let c = j % cols;
            let expect = if removed[c / head_dim] { means[c] } else { x };
            assert_eq!(g.to_bits(), expect.to_bits(), "element {j}: kept columns unchanged, removed ones their fill");
        }
    }
    let mut rec = Recorder::new(ctx(), "blend_columns shapes");
    let err = ops::blend_columns(&mut rec, &upload(&[0.0; 10], &[2, 5]), &upload(&[1.0; 6], &[6])).unwrap_err();
    assert!(err.to_string().contains("not twice a row length"), "{err}");
}
