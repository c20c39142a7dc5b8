use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::Rng;
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

#[test]
fn copy_matches_cpu() {
    for n in [4usize, 1028, 4 * 70_001] {
        let src = Rng::new(n as u64).normal(n, 1.0);
        let dst = Guarded::new("copy dst", &[n]);
        let mut rec = Recorder::new(ctx(), "copy");
        // The guarded view is longer (it runs over the tail guard): copy into its first n.
        let view = dst.tensor().view(ctx(), 0, &[n]).unwrap();
        ops::copy(&mut rec, &upload(&src, &[n]), &view).unwrap();
        rec.submit();
        assert_close(&format!("copy {n}"), &dst.read(), &src, Tol::new(0.0, 0.0));
    }
    let mut rec = Recorder::new(ctx(), "copy");
    let err = ops::copy(&mut rec, &upload(&[1.0; 6], &[6]), &upload(&[0.0; 6], &[6])).unwrap_err().to_string();
    assert!(err.contains("multiple of 4"), "{err}");
}
