use llava_lens_tensor::cpu::AttentionShape;

use super::{need, u32_of};
use crate::capture::AttentionCapture;
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::AttentionParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// Longest key sequence of the per-query kernel: its score row lives in workgroup memory
/// (`shaders/attention.wgsl`). The flash kernel has no such limit.
pub const MAX_KEYS: usize = 3072;
/// Largest head dimension the per-query kernel stages.
pub const MAX_HEAD_DIM: usize = 256;
/// Largest head dimension the flash kernel stages (`shaders/flash_attention.wgsl`).
pub const FLASH_MAX_HEAD_DIM: usize = 128;
/// Query rows one flash workgroup takes.
const FLASH_ROWS: usize = 8;
/// Keys per workgroup of split-key decode (`CHUNK` in flash_attention.wgsl).
const SPLIT_KEYS: usize = 128;

/// Which attention kernel runs a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `attention.wgsl`: a workgroup per (query, head), the score row in workgroup memory
    /// (decode: one query, keys up to [`MAX_KEYS`]).
    PerQuery,
    /// `flash_attention.wgsl`: 8 queries of a head per workgroup, keys in tiles with an online
    /// softmax; captures by a second pass over the captured rows only. Any number of keys.
    Flash,
    /// `flash_attention.wgsl:decode_split` + `decode_combine`: one query (decode), its keys in
    /// chunks of 128 across workgroups, then merged; captures as for flash. Any number of keys.
    SplitKeys,
}

impl AttentionKernel {
    /// Split keys for one query (decode) with more keys than one chunk (with one chunk the
    /// split only adds the merge); flash where its head dimension fits and there are 8 queries
    /// to share a workgroup or more keys than the per-query kernel holds; per-query otherwise
    /// (short decodes, a few queries, heads over 128).
    pub fn for_shape(s: &AttentionShape) -> AttentionKernel {
        if s.n_queries == 1 && s.head_dim <= MAX_HEAD_DIM && s.n_keys > SPLIT_KEYS {
            AttentionKernel::SplitKeys
        } else if s.head_dim <= FLASH_MAX_HEAD_DIM && (s.n_queries >= FLASH_ROWS || s.n_keys > MAX_KEYS) {
            AttentionKernel::Flash
        } else {
            AttentionKernel::PerQuery
        }
    }
}

fn params(
    s: &AttentionShape,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    out: &GpuTensor,
    n_head_slots: usize,
) -> Result<AttentionParams, GpuError> {
    let op = "attention";
    ensure(s.head_dim > 0, op, || "head_dim 0".to_string())?;
    ensure(s.n_kv_heads > 0 && s.n_heads.is_multiple_of(s.n_kv_heads), op, || {
        format!("{} heads do not share {} kv heads evenly", s.n_heads, s.n_kv_heads)
    })?;
    ensure(s.n_queries >= 1 && s.n_queries <= s.n_keys, op, || format!("{} queries against {} keys", s.n_queries, s.n_keys))?;
    let span = |heads: usize, stride: usize, offset: usize, rows: usize| (rows - 1) * stride + offset + heads * s.head_dim;
    need(op, "q", q, span(s.n_heads, s.q_stride, s.q_offset, s.n_queries))?;
    need(op, "k", k, span(s.n_kv_heads, s.k_stride, s.k_offset, s.n_keys))?;
    need(op, "v", v, span(s.n_kv_heads, s.v_stride, s.v_offset, s.n_keys))?;
    need(op, "out", out, s.n_queries * s.n_heads * s.head_dim)?;
    Ok(AttentionParams { n_head_slots: u32_of(op, n_head_slots)?, ..uniform_of(op, s)? })
}

/// `s` as the kernels' uniform (no mask, no capture slots).
pub(crate) fn uniform_of(op: &'static str, s: &AttentionShape) -> Result<AttentionParams, GpuError> {
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
        mask_from: u32::MAX,
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
    attention_using(rec, AttentionKernel::for_shape(s), q, k, v, out, s, cap, mask)
}

/// [`attention_with`] on a chosen kernel (tests and benchmarks run both on the same inputs).
#[allow(clippy::too_many_arguments)]
pub fn attention_using(
    rec: &mut Recorder<'_>,
    kernel: AttentionKernel,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    out: &GpuTensor,
    s: &AttentionShape,
    cap: Option<&AttentionCapture>,
    mask: Option<KeyMask<'_>>,
) -> Result<(), GpuError> {
    let op = "attention";
    if let Some(c) = cap {
        c.check(s)?;
    }
    if let Some(m) = mask {
        need(op, "key mask", m.keys, s.n_keys)?;
    }
    let mut p = params(s, q, k, v, out, cap.map_or(0, |c| c.heads.len()))?;
    p.mask_from = mask.map_or(u32::MAX, |m| m.from.min(u32::MAX as usize) as u32);
    let dummy = rec.ctx().dummy.as_entire_binding();
    let mask_binding = (9, mask.map_or(dummy, |m| m.keys.binding()));
    let (q_b, k_b, v_b) = ((1, q.binding()), (2, k.binding()), (3, v.binding()));
    match kernel {
        AttentionKernel::PerQuery => {
            ensure(s.n_keys <= MAX_KEYS, op, || format!("{} keys exceed the per-query kernel's {MAX_KEYS}", s.n_keys))?;
            ensure(s.head_dim <= MAX_HEAD_DIM, op, || format!("head_dim {} is outside 1..={MAX_HEAD_DIM}", s.head_dim))?;
            let mut bindings = vec![q_b, k_b, v_b, (4, out.binding()), mask_binding];
            if let Some(c) = cap {
                bindings.extend([(5, c.row_slots.binding()), (6, c.head_slots.binding()), (7, c.pattern.binding()), (8, c.z.binding())]);
            }
            let entry = if cap.is_some() { "main_capture" } else { "main" };
            rec.dispatch(Kernel::Attention, entry, &[], &p, &bindings, Groups::Linear((s.n_queries * s.n_heads) as u32));
        }
        AttentionKernel::Flash | AttentionKernel::SplitKeys => {
            if kernel == AttentionKernel::Flash {
                ensure(s.head_dim <= FLASH_MAX_HEAD_DIM, op, || {
                    format!("head_dim {} is outside the flash kernel's 1..={FLASH_MAX_HEAD_DIM}", s.head_dim)
                })?;
                let bindings = [q_b.clone(), k_b.clone(), v_b.clone(), (4, out.binding()), mask_binding.clone()];
                let groups = Groups::Linear(u32_of(op, s.n_queries.div_ceil(FLASH_ROWS) * s.n_heads)?);
                rec.dispatch(Kernel::FlashAttention, "flash", &[], &p, &bindings, groups);
            } else {
                ensure(s.n_queries == 1, op, || format!("split keys serve one query (decode), not {}", s.n_queries))?;
                ensure(s.head_dim <= MAX_HEAD_DIM, op, || format!("head_dim {} is outside 1..={MAX_HEAD_DIM}", s.head_dim))?;
                let chunks = s.n_keys.div_ceil(SPLIT_KEYS);
                let partial = rec.ctx().scratch(s.n_heads * chunks * (s.head_dim + 2))?;
                let bindings = [q_b.clone(), k_b.clone(), v_b.clone(), mask_binding.clone(), (10, partial.binding())];
                rec.dispatch(Kernel::FlashAttention, "decode_split", &[], &p, &bindings, Groups::Linear(u32_of(op, s.n_heads * chunks)?));
                let bindings = [(4, out.binding()), (10, partial.binding())];
                rec.dispatch(Kernel::FlashAttention, "decode_combine", &[], &p, &bindings, Groups::Linear(u32_of(op, s.n_heads)?));
            }
            if let Some(c) = cap {
                p.n_row_slots = u32_of(op, c.rows.len())?;
                let bindings = [
                    q_b,
                    k_b,
                    v_b,
                    (5, c.row_list.binding()),
                    (6, c.head_slots.binding()),
                    (7, c.pattern.binding()),
                    (8, c.z.binding()),
                    mask_binding,
                ];
                let groups = Groups::Linear(u32_of(op, c.rows.len() * s.n_heads)?);
                rec.dispatch(Kernel::FlashAttention, "flash_capture", &[], &p, &bindings, groups);
            }
        }
    }
    Ok(())
}
