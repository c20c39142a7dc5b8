use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::{Rng, cpu};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

const LENGTHS: [usize; 5] = [1, 7, 255, 257, 1031];

/// Inputs spanning every interval of the erf approximation (|x| up to 12) plus exact edge values.
fn inputs(n: usize, seed: u64) -> Vec<f32> {
    let mut x = Rng::new(seed).uniform(n, -12.0, 12.0);
    for (slot, v) in x.iter_mut().zip([0.0, -0.0, 0.84375, 1.25, 2.857, 6.0, -6.0, 1e-6]) {
        *slot = v;
    }
    x
}

#[test]
fn gelu_matches_cpu() {
    for (i, &n) in LENGTHS.iter().enumerate() {
        let x = inputs(n, i as u64);
        let out = Guarded::with_f32("gelu x", &x, &[n]);
        let mut rec = Recorder::new(ctx(), "gelu");
        ops::gelu(&mut rec, out.tensor()).unwrap();
        rec.submit();
        let mut want = x.clone();
        cpu::gelu(&mut want);
        assert_close(&format!("gelu {n}"), &out.read(), &want, Tol::new(1e-6, 1e-5));
    }
}

#[test]
fn quick_gelu_matches_cpu() {
    for (i, &n) in LENGTHS.iter().enumerate() {
        let x = inputs(n, 10 + i as u64);
        let out = Guarded::with_f32("quick_gelu x", &x, &[n]);
        let mut rec = Recorder::new(ctx(), "quick_gelu");
        ops::quick_gelu(&mut rec, out.tensor()).unwrap();
        rec.submit();
        let mut want = x.clone();
        cpu::quick_gelu(&mut want);
        assert_close(&format!("quick_gelu {n}"), &out.read(), &want, Tol::new(1e-6, 1e-5));
    }
}

#[test]
fn gelu_tanh_matches_cpu() {
    for (i, &n) in LENGTHS.iter().enumerate() {
        let x = inputs(n, 20 + i as u64);
        let out = Guarded::with_f32("gelu_tanh x", &x, &[n]);
        let mut rec = Recorder::new(ctx(), "gelu_tanh");
        ops::gelu_tanh(&mut rec, out.tensor()).unwrap();
        rec.submit();
        let mut want = x.clone();
        cpu::gelu_tanh(&mut want);
        assert_close(&format!("gelu_tanh {n}"), &out.read(), &want, Tol::new(1e-6, 1e-5));
        // The tanh and erf forms differ by more than 1e-4 in places: the test tells them apart.
        let mut erf = x.clone();
        cpu::gelu(&mut erf);
        if n > 100 {
            assert!(erf.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-4), "gelu_tanh {n}: indistinguishable from erf gelu");
        }
    }
}

#[test]
fn silu_mul_matches_cpu() {
    for (i, &(rows, n)) in [(1usize, 1usize), (3, 7), (5, 257), (2, 1031)].iter().enumerate() {
        let x = Rng::new(20 + i as u64).uniform(rows * 2 * n, -8.0, 8.0);
        let y = Guarded::new("silu_mul y", &[rows, n]);
        let mut rec = Recorder::new(ctx(), "silu_mul");
        ops::silu_mul(&mut rec, &upload(&x, &[rows, 2 * n]), n, y.tensor()).unwrap();
        rec.submit();
        assert_close(&format!("silu_mul {rows}x{n}"), &y.read(), &cpu::silu_mul(&x, n), Tol::new(1e-6, 1e-5));
    }
}
