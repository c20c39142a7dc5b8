use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::{Rng, cpu};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

#[test]
fn fixed_rms_norm_matches_cpu() {
    for (i, &(rows, d)) in [(1usize, 1usize), (7, 33), (37, 300)].iter().enumerate() {
        let mut rng = Rng::new(i as u64);
        let (x, w, r) = (rng.normal(rows * d, 2.0), rng.uniform(d, 0.5, 1.5), rng.normal(d, 3.0));
        let y = Guarded::new("fixed_rms_norm y", &[rows, d]);
        let mut rec = Recorder::new(ctx(), "fixed_rms_norm");
        ops::fixed_rms_norm(&mut rec, &upload(&x, &[rows, d]), &upload(&w, &[d]), &upload(&r, &[d]), y.tensor(), 1e-6).unwrap();
        rec.submit();
        assert_close(&format!("fixed_rms_norm {rows}x{d}"), &y.read(), &cpu::fixed_rms_norm(&x, &w, &r, 1e-6), Tol::new(1e-5, 1e-5));
    }
}

#[test]
fn scatter_heads_and_weighted_values_match_cpu() {
    let (heads, hd) = (5, 7);
    let z = Rng::new(1).normal(heads * hd, 1.0);
    let y = Guarded::new("scatter", &[heads, heads * hd]);
    let mut rec = Recorder::new(ctx(), "scatter_heads");
    ops::scatter_heads(&mut rec, &upload(&z, &[heads * hd]), hd, y.tensor()).unwrap();
    rec.submit();
    assert_close("scatter_heads", &y.read(), &cpu::scatter_heads(&z, hd), Tol::new(0.0, 0.0));

    let (rows, kv_heads) = (13, 2);
    let stride = kv_heads * hd + 3; // a padded row, as a strided view would be
    let v = Rng::new(2).normal(rows * stride, 1.0);
    let alpha = Rng::new(3).uniform(rows, 0.0, 1.0);
    for (head, kv_head) in [(0, 0), (4, 1)] {
        let y = Guarded::new("weighted", &[rows, heads * hd]);
        let mut rec = Recorder::new(ctx(), "weighted_values");
        ops::weighted_values(
            &mut rec,
            &upload(&v, &[rows, stride]),
            stride,
            &upload(&alpha, &[rows]),
            head,
            kv_head,
            heads,
            hd,
            y.tensor(),
        )
        .unwrap();
        rec.submit();
        let want = cpu::weighted_values(&v, stride, &alpha, head, kv_head, heads, hd);
        assert_close(&format!("weighted_values head {head}"), &y.read(), &want, Tol::new(0.0, 0.0));
    }
}
