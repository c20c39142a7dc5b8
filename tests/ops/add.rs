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
