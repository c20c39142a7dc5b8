//! Bind groups kept across dispatches (crates/gpu/src/bind_groups.rs): a repeated dispatch makes
//! none, results stay right when pooled buffers change hands, and a released buffer takes every
//! bind group that binds it along (nothing kept alive, no stale entries).

use llava_lens_gpu::ops;
use llava_lens_gpu::{ContextOptions, GpuContext, GpuMatrix, GpuTensor, Recorder, read_f32_blocking};
use llava_lens_tensor::cpu;
use llava_lens_tensor::{DType, HostMatrix, Rng};

/// A context of its own: the counters and the cache are per context, and the shared one is
/// used by tests running in parallel.
fn own_context() -> GpuContext {
    GpuContext::new_blocking(ContextOptions::default()).unwrap()
}

fn matvec_once(ctx: &GpuContext, x: &GpuTensor, w: &GpuMatrix, n: usize) -> Vec<f32> {
    let y = GpuTensor::output(ctx, &[n], "y");
    let mut rec = Recorder::new(ctx, "matvec");
    ops::matvec(&mut rec, x, w, &y).unwrap();
    rec.submit();
    read_f32_blocking(ctx, &y).unwrap()
}

#[test]
fn a_repeated_dispatch_reuses_its_bind_group() {
    let ctx = own_context();
    let (n, k) = (37, 96);
    let host = HostMatrix::from_f32(n, k, &Rng::new(1).normal(n * k, 0.5), DType::Q4G32).unwrap();
    let w = GpuMatrix::upload(&ctx, &host, "w").unwrap();
    let xs: Vec<f32> = Rng::new(2).uniform(k, -1.0, 1.0);
    let x = GpuTensor::from_f32(&ctx, &xs, &[k], "x").unwrap();
    let want = cpu::matvec(&xs, &host);
    let first = matvec_once(&ctx, &x, &w, n);
    let before = ctx.memory().host_counts();
    // The output comes from the pool: the same buffer as the first time, so the same bind group.
    let second = matvec_once(&ctx, &x, &w, n);
    let made = ctx.memory().host_counts() - before;
    assert_eq!(made.dispatches, 1);
    assert_eq!(made.bind_groups, 0, "the second identical dispatch made a bind group");
    for (got, name) in [(&first, "first"), (&second, "second")] {
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() <= 2e-5 + 2e-5 * e.abs(), "{name} run: {g} vs {e}");
        }
    }
}

#[test]
fn releasing_a_buffer_forgets_its_bind_groups() {
    let ctx = own_context();
    let (n, k) = (5, 64);
    let host = HostMatrix::from_f32(n, k, &Rng::new(3).normal(n * k, 0.5), DType::F32).unwrap();
    let w = GpuMatrix::upload(&ctx, &host, "w").unwrap();
    let baseline = ctx.memory().bind_groups_kept();
    // Inputs that are not pooled (uploads) are freed when dropped: each binds the persistent
    // weights, and none of them may stay referenced.
    for seed in 0..20u64 {
        let xs = Rng::new(10 + seed).uniform(k, -1.0, 1.0);
        let x = GpuTensor::from_f32(&ctx, &xs, &[k], "x").unwrap();
        let got = matvec_once(&ctx, &x, &w, n);
        let want = cpu::matvec(&xs, &host);
        assert!(got.iter().zip(&want).all(|(g, e)| (g - e).abs() <= 2e-5 + 2e-5 * e.abs()), "seed {seed}");
        let (groups, _) = ctx.memory().bind_groups_kept();
        assert_eq!(groups, baseline.0 + 1, "one bind group while x is alive");
        drop(x);
        assert_eq!(ctx.memory().bind_groups_kept(), baseline, "x's bind group (and its references) outlived x");
    }
}
