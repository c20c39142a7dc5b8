use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::Rng;
use llava_lens_tensor::cpu::{self, AttentionShape};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

const TOL: Tol = Tol::new(2e-6, 2e-5);

fn run(name: &str, s: AttentionShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let q = rng.normal(s.n_queries * s.q_stride, 1.0);
    let k = rng.normal(s.n_keys * s.k_stride, 1.0);
    let v = rng.normal(s.n_keys * s.v_stride, 1.0);
    let out = Guarded::new("attention out", &[s.n_queries, s.n_heads * s.head_dim]);
    let mut rec = Recorder::new(ctx(), "attention");
    ops::attention(
        &mut rec,
        &upload(&q, &[s.n_queries, s.q_stride]),
        &upload(&k, &[s.n_keys, s.k_stride]),
        &upload(&v, &[s.n_keys, s.v_stride]),
        out.tensor(),
        &s,
    )
    .unwrap();
    rec.submit();
    assert_close(name, &out.read(), &cpu::attention(&q, &k, &v, s).0, TOL);
}

#[test]
fn prefill_causal_matches_cpu() {
    run("1 token", AttentionShape::packed(1, 1, 1, 1, 1, true), 1);
    run("prime lengths", AttentionShape::packed(13, 13, 3, 3, 7, true), 2);
    run("longer than a workgroup", AttentionShape::packed(131, 131, 2, 2, 16, true), 3);
}

#[test]
fn grouped_query_attention_matches_cpu() {
    run("gqa 4 heads over 2 kv", AttentionShape::packed(17, 17, 4, 2, 8, true), 4);
    run("mqa 3 heads over 1 kv", AttentionShape::packed(5, 5, 3, 1, 32, true), 5);
}

#[test]
fn non_causal_vision_attention_matches_cpu() {
    // CLIP: every patch sees every patch.
    run("clip-like", AttentionShape::packed(37, 37, 4, 4, 16, false), 6);
}

#[test]
fn decode_against_a_kv_cache_matches_cpu() {
    run("decode 1 query, 29 cached keys", AttentionShape::packed(1, 29, 4, 2, 16, true), 7);
    run("chunk of 3 queries after 40 keys", AttentionShape::packed(3, 43, 2, 2, 16, true), 8);
    run("head_dim 128, 300 keys", AttentionShape::packed(1, 300, 2, 1, 128, true), 9);
}

#[test]
fn fused_qkv_layout_with_strides_and_offsets_matches_cpu() {
    // One [L, (4 + 2 + 2) * 8] buffer holding q | k | v, as a fused QKV projection writes it.
    let (l, hd) = (11, 8);
    let stride = 8 * hd;
    let s = AttentionShape {
        q_stride: stride,
        q_offset: 0,
        k_stride: stride,
        k_offset: 4 * hd,
        v_stride: stride,
        v_offset: 6 * hd,
        ..AttentionShape::packed(l, l, 4, 2, hd, true)
    };
    let qkv = Rng::new(10).normal(l * stride, 1.0);
    let t = upload(&qkv, &[l, stride]);
    // Both prefill kernels (flash_attention.wgsl and attention.wgsl) read the same rows.
    for kernel in [ops::AttentionKernel::Flash, ops::AttentionKernel::PerQuery] {
        let out = Guarded::new("attention out", &[l, 4 * hd]);
        let mut rec = Recorder::new(ctx(), "attention");
        ops::attention_using(&mut rec, kernel, &t, &t, &t, out.tensor(), &s, None, None).unwrap();
        rec.submit();
        assert_close(&format!("fused qkv, {kernel:?}"), &out.read(), &cpu::attention(&qkv, &qkv, &qkv, s).0, TOL);
    }
}

#[test]
fn limits_are_clear_errors() {
    let s = AttentionShape::packed(1, ops::MAX_KEYS + 1, 1, 1, 4, true);
    let q = upload(&[0.0; 4], &[1, 4]);
    let kv = upload(&vec![0.0; 4 * (ops::MAX_KEYS + 1)], &[ops::MAX_KEYS + 1, 4]);
    let out = Guarded::new("out", &[1, 4]);
    let mut rec = Recorder::new(ctx(), "attention");
    // The per-query kernel's limit (the flash kernel, chosen for such shapes, has none).
    let per_query = ops::AttentionKernel::PerQuery;
    let err = ops::attention_using(&mut rec, per_query, &q, &kv, &kv, out.tensor(), &s, None, None).unwrap_err().to_string();
    assert!(err.contains("3073 keys"), "{err}");
    let bad_gqa = AttentionShape::packed(1, 1, 3, 2, 4, true);
    let err = ops::attention(&mut rec, &q, &kv, &kv, out.tensor(), &bad_gqa).unwrap_err().to_string();
    assert!(err.contains("3 heads do not share 2 kv heads"), "{err}");
}

#[test]
fn knockout_mask_matches_cpu() {
    // Text queries (positions >= 12) may not see blocked image keys 3, 4 and 9; earlier queries
    // still do. Prefill and a decode step against the cache.
    let blocked: Vec<bool> = (0..20).map(|j| [3, 4, 9].contains(&j)).collect();
    let mask: Vec<u32> = blocked.iter().map(|&b| b as u32).collect();
    for (nq, nk) in [(20, 20), (1, 20)] {
        let s = AttentionShape::packed(nq, nk, 4, 2, 8, true);
        let mut rng = Rng::new(nq as u64);
        let q = rng.normal(nq * s.q_stride, 1.0);
        let k = rng.normal(nk * s.k_stride, 1.0);
        let v = rng.normal(nk * s.v_stride, 1.0);
        let out = Guarded::new("masked out", &[nq, 4 * 8]);
        let mut rec = Recorder::new(ctx(), "attention masked");
        let keys = llava_lens_gpu::GpuTensor::from_u32(ctx(), &mask, &[nk], "mask").unwrap();
        let m = ops::KeyMask { keys: &keys, from: 12 };
        ops::attention_with(
            &mut rec,
            &upload(&q, &[nq, 32]),
            &upload(&k, &[nk, 16]),
            &upload(&v, &[nk, 16]),
            out.tensor(),
            &s,
            None,
            Some(m),
        )
        .unwrap();
        rec.submit();
        let (want, probs) = cpu::attention_masked(&q, &k, &v, s, &blocked, 12);
        assert_close(&format!("masked attention {nq}x{nk}"), &out.read(), &want, TOL);
        // The mask really changed the text rows (so the test can fail).
        let (plain, _) = cpu::attention(&q, &k, &v, s);
        assert!(want.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3));
        assert!(probs.iter().all(|p| p.is_finite()));
    }
}
