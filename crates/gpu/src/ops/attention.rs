use llava_lens_tensor::cpu::AttentionShape;

use super::{need, u32_of};
use crate::capture::AttentionCapture;
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::AttentionParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// Longest key sequence: the score row lives in workgroup memory (`shaders/attention.wgsl`).
pub const MAX_KEYS: usize = 3072;
/// Largest head dimension the kernel stages.
pub const MAX_HEAD_DIM: usize = 256;

fn params(
    s: &AttentionShape,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    out: &GpuTensor,
    n_head_slots: usize,
) -> Result<AttentionParams, GpuError> {
    let op = "attention";
    ensure(s.n_keys <= MAX_KEYS, op, || format!("{} keys exceed the kernel's {MAX_KEYS}", s.n_keys))?;
    ensure(s.head_dim > 0 && s.head_dim <= MAX_HEAD_DIM, op, || format!("head_dim {} is outside 1..={MAX_HEAD_DIM}", s.head_dim))?;
    ensure(s.n_kv_heads > 0 && s.n_heads.is_multiple_of(s.n_kv_heads), op, || {
        format!("{} heads do not share {} kv heads evenly", s.n_heads, s.n_kv_heads)
    })?;
    ensure(s.n_queries >= 1 && s.n_queries <= s.n_keys, op, || format!("{} queries against {} keys", s.n_queries, s.n_keys))?;
    let span = |heads: usize, stride: usize, offset: usize, rows: usize| (rows - 1) * stride + offset + heads * s.head_dim;
    need(op, "q", q, span(s.n_heads, s.q_stride, s.q_offset, s.n_queries))?;
    need(op, "k", k, span(s.n_kv_heads, s.k_stride, s.k_offset, s.n_keys))?;
    need(op, "v", v, span(s.n_kv_heads, s.v_stride, s.v_offset, s.n_keys))?;
    need(op, "out", out, s.n_queries * s.n_heads * s.head_dim)?;
    Ok(AttentionParams {
        n_queries: u32_of(op, s.n_queries)?,
        n_keys: u32_of(op, s.n_keys)?,
        n_heads: u32_of(op, s.n_heads)?,
        n_kv_heads: u32_of(op, s.n_kv_heads)?,
        head_dim: u32_of(op, s.head_dim)?,
        q_stride: u32_of(op, s.q_stride)?,
        q_offset: u32_of(op, s.q_offset)?,
        k_stride: u32_of(op, s.k_stride)?,
        k_offset: u32_of(op, s.k_offset)?,
        v_stride: u32_of(op, s.v_stride)?,
        v_offset: u32_of(op, s.v_offset)?,
        causal: s.causal as u32,
        scale: s.scale,
        n_head_slots: u32_of(op, n_head_slots)?,
        ..Default::default()
    })
}

/// `softmax(Q K^T * scale + mask) V` for every query row and head; prefill or decode against a
/// KV cache depending on `s.n_queries`.
pub fn attention(
    rec: &mut Recorder<'_>,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    out: &GpuTensor,
    s: &AttentionShape,
) -> Result<(), GpuError> {
    attention_with(rec, q, k, v, out, s, None, None)
}

/// [`attention`] that also writes the probabilities and per-head outputs of the rows and heads
/// in `cap` (planned before encoding; see [`crate::capture`]).
pub fn attention_capture(
    rec: &mut Recorder<'_>,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    out: &GpuTensor,
    s: &AttentionShape,
    cap: &AttentionCapture,
) -> Result<(), GpuError> {
    attention_with(rec, q, k, v, out, s, Some(cap), None)
}

/// Keys blocked for the queries at positions `>= from` (attention knockout): `keys` is one u32
/// per key position, non-zero = blocked. A query never loses all its keys as long as its own
/// position is not blocked.
#[derive(Debug, Clone, Copy)]
pub struct KeyMask<'a> {
    pub keys: &'a GpuTensor,
    pub from: usize,
}

/// [`attention`] with optional capture and an optional key mask (the general form). Without a
/// mask the kernel never reads binding 9, so a dummy buffer stands in.
pub fn attention_with(
    rec: &mut Recorder<'_>,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    out: &GpuTensor,
    s: &AttentionShape,
    cap: Option<&AttentionCapture>,
    mask: Option<KeyMask<'_>>,
) -> Result<(), GpuError> {
    if let Some(c) = cap {
        c.check(s)?;
    }
    if let Some(m) = mask {
        need("attention", "key mask", m.keys, s.n_keys)?;
    }
    let mut p = params(s, q, k, v, out, cap.map_or(0, |c| c.heads.len()))?;
    p.mask_from = mask.map_or(u32::MAX, |m| m.from.min(u32::MAX as usize) as u32);
    let dummy = rec.ctx().dummy.as_entire_binding();
    let mut bindings =
        vec![(1, q.binding()), (2, k.binding()), (3, v.binding()), (4, out.binding()), (9, mask.map_or(dummy, |m| m.keys.binding()))];
    if let Some(c) = cap {
        bindings.extend([(5, c.row_slots.binding()), (6, c.head_slots.binding()), (7, c.pattern.binding()), (8, c.z.binding())]);
    }
    let entry = if cap.is_some() { "main_capture" } else { "main" };
    rec.dispatch(Kernel::Attention, entry, &[], &p, &bindings, Groups::Linear((s.n_queries * s.n_heads) as u32));
    Ok(())
}
