//! The capture variant of attention writes exactly the planned probability rows and per-head
//! outputs, and the regular output is unchanged by capturing.

use llava_lens_gpu::capture::{AttentionCapture, CapturePlan, RowCapture};
use llava_lens_gpu::{Recorder, ops};
use llava_lens_tensor::Rng;
use llava_lens_tensor::cpu::{self, AttentionShape};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, download, upload};

#[test]
fn capture_returns_the_cpu_softmax_rows_and_head_outputs() {
    let s = AttentionShape::packed(23, 23, 4, 2, 16, true);
    let mut rng = Rng::new(77);
    let q = rng.normal(s.n_queries * s.q_stride, 1.5);
    let k = rng.normal(s.n_keys * s.k_stride, 1.5);
    let v = rng.normal(s.n_keys * s.v_stride, 1.0);
    let mut plan = CapturePlan::new();
    // The explanation's use: the last query row of two heads; plus an early row (mostly masked).
    plan.add_named("blocks.5.attn.hook_pattern", &[22, 2], &[3, 0]).unwrap();
    plan.add_named("blocks.5.attn.hook_z", &[22], &[1]).unwrap();
    let sel = plan.attention(5).unwrap();
    let cap = AttentionCapture::new(ctx(), &sel, &s).unwrap();
    let out = Guarded::new("out", &[s.n_queries, s.n_heads * s.head_dim]);
    let mut rec = Recorder::new(ctx(), "attention capture");
    ops::attention_capture(&mut rec, &upload(&q, &[23, 64]), &upload(&k, &[23, 32]), &upload(&v, &[23, 32]), out.tensor(), &s, &cap)
        .unwrap();
    rec.submit();

    let (want_out, want_probs) = cpu::attention(&q, &k, &v, s);
    assert_close("output with capture", &out.read(), &want_out, Tol::new(2e-6, 2e-5));
    let pattern = download(&cap.pattern);
    let z = download(&cap.z);
    for (rs, &row) in sel.rows.iter().enumerate() {
        for (hs, &head) in sel.heads.iter().enumerate() {
            let slot = rs * sel.heads.len() + hs;
            let got = &pattern[slot * s.n_keys..][..s.n_keys];
            let want = &want_probs[(head * s.n_queries + row) * s.n_keys..][..s.n_keys];
            assert_close(&format!("pattern row {row} head {head}"), got, want, Tol::new(1e-7, 1e-6));
            assert!(got[row + 1..].iter().all(|&p| p == 0.0), "masked keys must be exactly 0");
            let want_z = &want_out[row * s.n_heads * s.head_dim + head * s.head_dim..][..s.head_dim];
            assert_close(&format!("z row {row} head {head}"), &z[slot * s.head_dim..][..s.head_dim], want_z, Tol::new(2e-6, 2e-5));
        }
    }
}

#[test]
fn capture_plan_must_fit_the_call() {
    let s = AttentionShape::packed(4, 4, 2, 2, 8, true);
    let mut plan = CapturePlan::new();
    plan.add_named("blocks.0.attn.hook_pattern", &[4], &[0]).unwrap();
    let err = AttentionCapture::new(ctx(), &plan.attention(0).unwrap(), &s).unwrap_err().to_string();
    assert!(err.contains("row 4 is outside the 4 query rows"), "{err}");
}

#[test]
fn row_capture_copies_exactly_the_planned_rows() {
    let (l, d) = (9, 12);
    let x = Rng::new(3).normal(l * d, 1.0);
    let mut plan = CapturePlan::new();
    plan.add_named("blocks.1.hook_resid_pre", &[8, 0, 3, 4], &[]).unwrap();
    let sel = plan.get(1, llava_lens_gpu::capture::HookPoint::ResidPre).unwrap();
    let cap = RowCapture::new(ctx(), sel, d, "hook_resid_pre");
    let mut rec = Recorder::new(ctx(), "row capture");
    cap.record(&mut rec, &upload(&x, &[l, d])).unwrap();
    rec.submit();
    let want: Vec<f32> = [0usize, 3, 4, 8].iter().flat_map(|&r| x[r * d..(r + 1) * d].to_vec()).collect();
    assert_eq!(download(&cap.values), want);
}

/// A freed op output goes back to the pool only once every recorder of its thread is submitted
/// (or dropped): reused while one is open, another user's work could be queued before the old
/// user's and its readback see the old user's writes.
#[test]
fn pooled_outputs_wait_for_open_recorders() {
    use llava_lens_gpu::GpuTensor;
    let len = 1237; // a size no other test on this thread allocates
    let open = Recorder::new(ctx(), "open");
    let x = GpuTensor::output(ctx(), &[len], "x");
    let first = x.buffer().clone();
    drop(x);
    let y = GpuTensor::output(ctx(), &[len], "y");
    assert!(*y.buffer() != first, "not reused while a recorder is open");
    drop(y);
    drop(open);
    let z = GpuTensor::output(ctx(), &[len], "z");
    let w = GpuTensor::output(ctx(), &[len], "w");
    assert!(*z.buffer() == first || *w.buffer() == first, "reused once no recorder is open");
}
