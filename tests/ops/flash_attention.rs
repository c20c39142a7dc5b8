//! The flash and split-key kernels (shaders/flash_attention.wgsl) against the CPU reference and
//! beside the per-query kernel on the same inputs: awkward tile and chunk remainders,
//! grouped-query heads, strides, masks, captures, and key counts past the per-query kernel's
//! limit.

use llava_lens_gpu::capture::{AttentionCapture, CapturePlan};
use llava_lens_gpu::ops::AttentionKernel;
use llava_lens_gpu::{GpuTensor, Recorder, ops};
use llava_lens_tensor::Rng;
use llava_lens_tensor::cpu::{self, AttentionShape};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, download, upload};

const TOL: Tol = Tol::new(2e-6, 2e-5);

/// Runs `kernel` on seeded inputs of shape `s` (with an optional mask of blocked keys for
/// queries at positions >= `from`); returns the output, the CPU's, and the inputs' CPU probs.
fn run(kernel: AttentionKernel, s: AttentionShape, seed: u64, mask: Option<(&[bool], usize)>) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let q = rng.normal(s.n_queries * s.q_stride, 1.0);
    let k = rng.normal(s.n_keys * s.k_stride, 1.0);
    let v = rng.normal(s.n_keys * s.v_stride, 1.0);
    let out = Guarded::new("attention out", &[s.n_queries, s.n_heads * s.head_dim]);
    let keys = mask.map(|(b, _)| GpuTensor::from_u32(ctx(), &b.iter().map(|&x| x as u32).collect::<Vec<_>>(), &[b.len()], "mask").unwrap());
    let m = keys.as_ref().zip(mask).map(|(keys, (_, from))| ops::KeyMask { keys, from });
    let mut rec = Recorder::new(ctx(), "attention");
    let (qt, kt, vt) = (upload(&q, &[s.n_queries, s.q_stride]), upload(&k, &[s.n_keys, s.k_stride]), upload(&v, &[s.n_keys, s.v_stride]));
    ops::attention_using(&mut rec, kernel, &qt, &kt, &vt, out.tensor(), &s, None, m).unwrap();
    rec.submit();
    let want = match mask {
        Some((blocked, from)) => cpu::attention_masked(&q, &k, &v, s, blocked, from).0,
        None => cpu::attention(&q, &k, &v, s).0,
    };
    (out.read(), want)
}

/// Every kernel that takes shape `s` against the CPU, and flash against the per-query kernel.
fn check(name: &str, s: AttentionShape, seed: u64) {
    if s.head_dim <= ops::FLASH_MAX_HEAD_DIM {
        let (flash, want) = run(AttentionKernel::Flash, s, seed, None);
        assert_close(&format!("flash: {name}"), &flash, &want, TOL);
        if s.n_keys <= ops::MAX_KEYS {
            let (per_query, _) = run(AttentionKernel::PerQuery, s, seed, None);
            assert_close(&format!("flash vs per-query: {name}"), &flash, &per_query, TOL);
        }
    }
    if s.n_queries == 1 {
        let (split, want) = run(AttentionKernel::SplitKeys, s, seed, None);
        assert_close(&format!("split keys: {name}"), &split, &want, TOL);
    }
}

#[test]
fn flash_matches_cpu_on_awkward_shapes() {
    check("1 token, head_dim 1", AttentionShape::packed(1, 1, 1, 1, 1, true), 1);
    check("13 queries (a tile and 5), head_dim 7", AttentionShape::packed(13, 13, 3, 3, 7, true), 2);
    check("131 queries, 17 key tiles", AttentionShape::packed(131, 131, 2, 2, 16, true), 3);
    check("gqa 4 heads over 2", AttentionShape::packed(17, 17, 4, 2, 8, true), 4);
    check("mqa, head_dim 32", AttentionShape::packed(9, 9, 3, 1, 32, true), 5);
    check("non-causal (clip)", AttentionShape::packed(37, 37, 4, 4, 16, false), 6);
    check("decode 1 query, 29 cached keys", AttentionShape::packed(1, 29, 4, 2, 16, true), 7);
    check("3 queries after 40 keys", AttentionShape::packed(3, 43, 2, 2, 16, true), 8);
    check("head_dim 128, 9 queries, 300 keys", AttentionShape::packed(9, 300, 2, 1, 128, true), 9);
    check("head_dim 72 (siglip)", AttentionShape::packed(10, 10, 2, 2, 72, false), 10);
}

#[test]
fn split_keys_decode_matches_cpu_over_chunk_remainders() {
    check("1 key", AttentionShape::packed(1, 1, 1, 1, 4, true), 21);
    check("127 keys (one chunk)", AttentionShape::packed(1, 127, 4, 2, 16, true), 22);
    check("300 keys (3 chunks, the last 44)", AttentionShape::packed(1, 300, 3, 1, 24, true), 23);
    check("head_dim 256", AttentionShape::packed(1, 200, 2, 2, 256, true), 24);
    let n = ops::MAX_KEYS + 29;
    check("3101 keys", AttentionShape::packed(1, n, 2, 1, 32, true), 25);
    // A whole chunk masked (keys 128..256): its partial carries no weight.
    let blocked: Vec<bool> = (0..300).map(|j| (128..256).contains(&j) || j % 7 == 3).collect();
    let s = AttentionShape::packed(1, 300, 4, 2, 8, true);
    let (split, want) = run(AttentionKernel::SplitKeys, s, 26, Some((&blocked, 200)));
    assert_close("split keys, masked", &split, &want, TOL);
    let (plain, _) = run(AttentionKernel::SplitKeys, s, 26, None);
    assert!(split.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3), "the mask changed the output");
}

#[test]
fn flash_runs_past_the_per_query_kernels_key_limit() {
    let n = ops::MAX_KEYS + 29;
    // A prefill chunk of 9 queries at the end of a long sequence, and a decode step.
    check("9 queries, 3101 keys", AttentionShape::packed(9, n, 2, 1, 16, true), 11);
    check("decode, 3101 keys", AttentionShape::packed(1, n, 2, 2, 8, true), 12);
    let kernel = |q, k, hd| AttentionKernel::for_shape(&AttentionShape::packed(q, k, 2, 2, hd, true));
    assert_eq!((kernel(1, n, 8), kernel(1, 200, 256)), (AttentionKernel::SplitKeys, AttentionKernel::SplitKeys), "decode");
    assert_eq!(kernel(1, 100, 8), AttentionKernel::PerQuery, "a decode of one chunk");
    assert_eq!((kernel(9, n, 8), kernel(3, n, 8)), (AttentionKernel::Flash, AttentionKernel::Flash), "prefill, long sequences");
    assert_eq!(kernel(3, 40, 8), AttentionKernel::PerQuery, "a few queries");
    // Heads larger than flash stages fall back to the per-query kernel.
    assert_eq!(AttentionKernel::for_shape(&AttentionShape::packed(64, 64, 2, 2, 256, true)), AttentionKernel::PerQuery);
}

#[test]
fn flash_honours_the_knockout_mask() {
    let blocked: Vec<bool> = (0..40).map(|j| [3, 4, 9, 17].contains(&j)).collect();
    for (nq, nk) in [(40, 40), (1, 40), (11, 40)] {
        let s = AttentionShape::packed(nq, nk, 4, 2, 8, true);
        let (flash, want) = run(AttentionKernel::Flash, s, nq as u64, Some((&blocked, 25)));
        assert_close(&format!("flash masked {nq}x{nk}"), &flash, &want, TOL);
        let (plain, _) = run(AttentionKernel::Flash, s, nq as u64, None);
        assert!(flash.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3), "the mask changed the text rows");
    }
}

#[test]
fn split_keys_decode_captures_its_row() {
    let n = 700;
    let s = AttentionShape::packed(1, n, 4, 2, 16, true);
    let mut rng = Rng::new(78);
    let (q, k, v) = (rng.normal(64, 1.5), rng.normal(n * 32, 1.5), rng.normal(n * 32, 1.0));
    let mut plan = CapturePlan::new();
    plan.add_named("blocks.0.attn.hook_pattern", &[0], &[3, 1]).unwrap();
    let sel = plan.attention(0).unwrap();
    let cap = AttentionCapture::new(ctx(), &sel, &s).unwrap();
    let out = Guarded::new("out", &[1, 64]);
    let mut rec = Recorder::new(ctx(), "split capture");
    assert_eq!(AttentionKernel::for_shape(&s), AttentionKernel::SplitKeys);
    ops::attention_capture(&mut rec, &upload(&q, &[1, 64]), &upload(&k, &[n, 32]), &upload(&v, &[n, 32]), out.tensor(), &s, &cap).unwrap();
    rec.submit();
    let (want_out, want_probs) = cpu::attention(&q, &k, &v, s);
    assert_close("split keys output with capture", &out.read(), &want_out, TOL);
    let pattern = download(&cap.pattern);
    for (hs, &head) in sel.heads.iter().enumerate() {
        assert_close(&format!("pattern head {head}"), &pattern[hs * n..][..n], &want_probs[head * n..][..n], Tol::new(1e-7, 1e-5));
    }
}

#[test]
fn flash_captures_pattern_and_z_of_long_rows() {
    // The explanation's capture (the last row of every head, and an early row) past 3072 keys.
    let n = ops::MAX_KEYS + 100;
    let s = AttentionShape::packed(n, n, 2, 1, 16, true);
    let mut rng = Rng::new(77);
    let q = rng.normal(n * s.q_stride, 1.5);
    let k = rng.normal(n * s.k_stride, 1.5);
    let v = rng.normal(n * s.v_stride, 1.0);
    let mut plan = CapturePlan::new();
    plan.add_named("blocks.0.attn.hook_pattern", &[n - 1, 5], &[1, 0]).unwrap();
    let sel = plan.attention(0).unwrap();
    let cap = AttentionCapture::new(ctx(), &sel, &s).unwrap();
    let out = Guarded::new("out", &[n, 2 * 16]);
    let mut rec = Recorder::new(ctx(), "flash capture");
    ops::attention_capture(&mut rec, &upload(&q, &[n, 32]), &upload(&k, &[n, 16]), &upload(&v, &[n, 16]), out.tensor(), &s, &cap).unwrap();
    rec.submit();
    let (want_out, want_probs) = cpu::attention(&q, &k, &v, s);
    assert_close("flash output with capture", &out.read(), &want_out, TOL);
    let (pattern, z) = (download(&cap.pattern), download(&cap.z));
    for (rs, &row) in sel.rows.iter().enumerate() {
        for (hs, &head) in sel.heads.iter().enumerate() {
            let slot = rs * sel.heads.len() + hs;
            let got = &pattern[slot * n..][..n];
            assert_close(&format!("pattern row {row} head {head}"), got, &want_probs[(head * n + row) * n..][..n], Tol::new(1e-7, 1e-5));
            assert!(got[row + 1..].iter().all(|&p| p == 0.0), "masked keys are exactly 0");
            let want_z = &want_out[row * 32 + head * 16..][..16];
            assert_close(&format!("z row {row} head {head}"), &z[slot * 16..][..16], want_z, TOL);
        }
    }
}
