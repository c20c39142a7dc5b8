use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::{Rng, cpu};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

/// (rows, cols): a single element, primes, a row longer than the 256-thread workgroup.
const SHAPES: [(usize, usize); 5] = [(1, 1), (3, 7), (5, 255), (2, 257), (4, 1031)];

#[test]
fn rms_norm_matches_cpu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(i as u64);
        let (x, w) = (rng.normal(rows * cols, 2.0), rng.uniform(cols, 0.5, 1.5));
        let y = Guarded::new("rms_norm y", &[rows, cols]);
        let mut rec = Recorder::new(ctx(), "rms_norm");
        ops::rms_norm(&mut rec, &upload(&x, &[rows, cols]), &upload(&w, &[cols]), y.tensor(), 1e-5).unwrap();
        rec.submit();
        assert_close(&format!("rms_norm {rows}x{cols}"), &y.read(), &cpu::rms_norm(&x, &w, 1e-5), Tol::new(1e-5, 1e-5));
    }
}

#[test]
fn layer_norm_matches_cpu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(10 + i as u64);
        // A large common offset: the two-pass variance must not cancel it away.
        let x: Vec<f32> = rng.normal(rows * cols, 2.0).iter().map(|v| v + 50.0).collect();
        let (w, b) = (rng.uniform(cols, 0.5, 1.5), rng.normal(cols, 0.1));
        let y = Guarded::new("layer_norm y", &[rows, cols]);
        let mut rec = Recorder::new(ctx(), "layer_norm");
        ops::layer_norm(&mut rec, &upload(&x, &[rows, cols]), &upload(&w, &[cols]), &upload(&b, &[cols]), y.tensor(), 1e-5).unwrap();
        rec.submit();
        let want = cpu::layer_norm(&x, &w, &b, 1e-5);
        // cols == 1 normalises to exactly the bias.
        assert_close(&format!("layer_norm {rows}x{cols}"), &y.read(), &want, Tol::new(2e-5, 2e-5));
    }
}

/// Inputs whose variance is of the order of eps: there eps decides the output (with variance
/// ~4, as above, a wrong eps changes nothing measurable).
#[test]
fn norms_match_cpu_where_the_variance_is_near_eps() {
    let eps = 1e-5;
    for (i, &(rows, cols)) in SHAPES.iter().enumerate().skip(1) {
        let mut rng = Rng::new(40 + i as u64);
        // Standard deviation 3e-3: variance 9e-6, about eps.
        let x: Vec<f32> = rng.normal(rows * cols, 3e-3).iter().map(|v| v + 0.25).collect();
        let centred: Vec<f32> = rng.normal(rows * cols, 3e-3);
        let (w, b) = (rng.uniform(cols, 0.5, 1.5), rng.normal(cols, 0.1));
        let y = Guarded::new("layer_norm y", &[rows, cols]);
        let mut rec = Recorder::new(ctx(), "layer_norm near eps");
        ops::layer_norm(&mut rec, &upload(&x, &[rows, cols]), &upload(&w, &[cols]), &upload(&b, &[cols]), y.tensor(), eps).unwrap();
        rec.submit();
        assert_close(&format!("layer_norm near eps {rows}x{cols}"), &y.read(), &cpu::layer_norm(&x, &w, &b, eps), Tol::new(1e-4, 1e-4));
        let y = Guarded::new("rms_norm y", &[rows, cols]);
        let mut rec = Recorder::new(ctx(), "rms_norm near eps");
        ops::rms_norm(&mut rec, &upload(&centred, &[rows, cols]), &upload(&w, &[cols]), y.tensor(), eps).unwrap();
        rec.submit();
        assert_close(&format!("rms_norm near eps {rows}x{cols}"), &y.read(), &cpu::rms_norm(&centred, &w, eps), Tol::new(1e-4, 1e-4));
    }
}
