//! Stacked segments over a shared KV cache (activation patching's batched passes): RoPE at each
//! row's own position and attention over the cache's prefix plus each segment's own keys, on the
//! GPU against the CPU references, and against the plain kernels run on each sequence whole.

use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::Rng;
use llava_lens_tensor::cpu::{self, AttentionShape, RopeShape};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

#[test]
fn rope_at_each_rows_own_position_matches_cpu() {
    // Three segments of 4, 1 and 6 rows from positions 9, 611 and 0; K inside a fused row.
    let spans = [(9, 4), (611, 1), (0, 6)];
    let segs = ops::Segments::new(ctx(), &spans).unwrap();
    let positions: Vec<usize> = spans.iter().flat_map(|&(from, rows)| from..from + rows).collect();
    let s = RopeShape { n_rows: 11, n_heads: 2, head_dim: 16, row_stride: 80, col_offset: 32, pos_offset: 0, theta: 10000.0 };
    let x = Rng::new(31).normal(11 * 80, 1.0);
    let out = Guarded::with_f32("rope rows x", &x, &[11, 80]);
    let mut rec = Recorder::new(ctx(), "rope rows");
    ops::rope_rows(&mut rec, out.tensor(), s, &segs).unwrap();
    rec.submit();
    let mut want = x.clone();
    cpu::rope_rows(&mut want, s, &positions);
    assert_close("rope rows", &out.read(), &want, Tol::new(2e-5, 2e-5));
    // A shape whose rows are not the segments' is refused.
    let mut rec = Recorder::new(ctx(), "rope rows");
    let err = ops::rope_rows(&mut rec, out.tensor(), RopeShape { n_rows: 10, ..s }, &segs).unwrap_err().to_string();
    assert!(err.contains("10 rows, the segments hold 11"), "{err}");
}

/// Segments `spans` of a sequence of `seq` positions with heads / kv heads / head_dim: the GPU
/// against `cpu::attention_segments`, and each segment against the rows of a whole causal pass
/// over the cache's prefix followed by that segment's own keys.
fn run(name: &str, seq: usize, spans: &[(usize, usize)], heads: usize, kv: usize, hd: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let rows: usize = spans.iter().map(|s| s.1).sum();
    let s = AttentionShape { n_queries: rows, ..AttentionShape::packed(rows, seq, heads, kv, hd, true) };
    let (qw, kw) = (heads * hd, kv * hd);
    let q = rng.normal(rows * qw, 1.0);
    let (k_cache, v_cache) = (rng.normal(seq * kw, 1.0), rng.normal(seq * kw, 1.0));
    let (k_own, v_own) = (rng.normal(rows * kw, 1.0), rng.normal(rows * kw, 1.0));
    let segs = ops::Segments::new(ctx(), spans).unwrap();
    let out = Guarded::new("segments out", &[rows, qw]);
    let mut rec = Recorder::new(ctx(), "attention segments");
    ops::attention_segments(
        &mut rec,
        &upload(&q, &[rows, qw]),
        &upload(&k_cache, &[seq, kw]),
        &upload(&v_cache, &[seq, kw]),
        &upload(&k_own, &[rows, kw]),
        &upload(&v_own, &[rows, kw]),
        out.tensor(),
        &s,
        &segs,
    )
    .unwrap();
    rec.submit();
    let got = out.read();
    assert_close(name, &got, &cpu::attention_segments(&q, &k_cache, &v_cache, &k_own, &v_own, s, spans), Tol::new(2e-6, 2e-5));
    // Each segment is the tail of a whole sequence: the cache's prefix, then its own rows.
    let mut row = 0;
    for &(from, n) in spans {
        let mut k = k_cache[..from * kw].to_vec();
        k.extend_from_slice(&k_own[row * kw..(row + n) * kw]);
        let mut v = v_cache[..from * kw].to_vec();
        v.extend_from_slice(&v_own[row * kw..(row + n) * kw]);
        let whole = AttentionShape::packed(n, from + n, heads, kv, hd, true);
        let (want, _) = cpu::attention(&q[row * qw..(row + n) * qw], &k, &v, whole);
        assert_close(&format!("{name}: segment from {from}"), &got[row * qw..(row + n) * qw], &want, Tol::new(2e-6, 2e-5));
        row += n;
    }
}

#[test]
fn attention_over_a_shared_prefix_and_own_keys_matches_cpu() {
    run("one row at position 0 (no shared keys)", 1, &[(0, 1)], 1, 1, 1, 1);
    run("three segments of odd sizes", 23, &[(5, 18), (22, 1), (13, 10)], 3, 3, 7, 2);
    run("gqa, rows past a workgroup", 300, &[(100, 140), (299, 1), (250, 50)], 4, 2, 16, 3);
    run("head_dim 128, many one-row segments", 40, &(0..12).map(|i| (3 * i + 1, 1)).collect::<Vec<_>>(), 2, 1, 128, 4);
}

#[test]
fn bad_segments_are_refused() {
    assert!(ops::Segments::new(ctx(), &[]).unwrap_err().to_string().contains("empty segments"));
    assert!(ops::Segments::new(ctx(), &[(3, 0)]).unwrap_err().to_string().contains("empty segments"));
    let err = ops::Segments::new(ctx(), &[(ops::MAX_KEYS, 1)]).unwrap_err().to_string();
    assert!(err.contains("past the attention kernel's"), "{err}");
}
