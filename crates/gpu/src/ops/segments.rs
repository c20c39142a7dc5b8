//! Several copies of a sequence's suffix stacked into one pass over a shared KV cache: the
//! batched passes of activation patching, where each patched copy differs from the base run
//! only from its patched position on. RoPE takes each row's own position, and attention reads
//! the cache's keys before a segment's first position and the segment's own keys after it.

use llava_lens_tensor::cpu::{AttentionShape, RopeShape};

use super::{MAX_HEAD_DIM, MAX_KEYS, groups_for, need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::{AttentionParams, RopeParams};
use crate::recorder::Groups;
use crate::{GpuContext, GpuError, GpuTensor, Recorder};

/// The stacked rows: segment `i` has `rows` rows at positions `from..from + rows` and continues
/// the cache's first `from` keys. The per-row tables the kernels read are uploaded once.
#[derive(Debug)]
pub struct Segments {
    /// `(from, rows)` of each segment, in row order.
    pub spans: Vec<(usize, usize)>,
    /// Rows of all segments together.
    pub rows: usize,
    /// Each segment's first row.
    starts: Vec<usize>,
    /// Each row's position `[rows]` (RoPE).
    positions: GpuTensor,
    /// Each row's segment start row and shared keys, `[rows, 2]` (attention).
    table: GpuTensor,
}

impl Segments {
    pub fn new(ctx: &GpuContext, spans: &[(usize, usize)]) -> Result<Segments, GpuError> {
        let op = "segments";
        ensure(!spans.is_empty() && spans.iter().all(|&(_, rows)| rows > 0), op, || format!("empty segments in {spans:?}"))?;
        let (mut positions, mut table, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for &(from, rows) in spans {
            starts.push(positions.len());
            let start = u32_of(op, positions.len())?;
            let last = from.checked_add(rows).ok_or_else(|| GpuError::shape(op, format!("segment from {from} of {rows} rows")))?;
            ensure(last <= MAX_KEYS, op, || format!("a segment ends at position {last}, past the attention kernel's {MAX_KEYS} keys"))?;
            for p in from..last {
                positions.push(u32_of(op, p)?);
                table.extend([start, u32_of(op, from)?]);
            }
        }
        let rows = positions.len();
        Ok(Segments {
            spans: spans.to_vec(),
            rows,
            starts,
            positions: GpuTensor::from_u32(ctx, &positions, &[rows], "segment positions")?,
            table: GpuTensor::from_u32(ctx, &table, &[rows, 2], "segment table")?,
        })
    }

    /// The first row of segment `i`.
    pub fn first_row(&self, i: usize) -> usize {
        self.starts[i]
    }

    /// Keys the cache must hold: the latest segment start.
    fn shared_keys(&self) -> usize {
        self.spans.iter().map(|s| s.0).max().unwrap_or(0)
    }
}

/// [`super::rope`] with each stacked row at its own position (`s.n_rows` must be the rows;
/// `s.pos_offset` is ignored).
pub fn rope_rows(rec: &mut Recorder<'_>, x: &GpuTensor, s: RopeShape, segs: &Segments) -> Result<(), GpuError> {
    let op = "rope_rows";
    ensure(s.head_dim.is_multiple_of(2) && s.head_dim > 0, op, || format!("head_dim {} must be even", s.head_dim))?;
    ensure(s.n_rows == segs.rows, op, || format!("{} rows, the segments hold {}", s.n_rows, segs.rows))?;
    ensure(s.col_offset + s.n_heads * s.head_dim <= s.row_stride, op, || {
        format!("heads end at column {} past the row stride {}", s.col_offset + s.n_heads * s.head_dim, s.row_stride)
    })?;
    need(op, "x", x, (s.n_rows - 1) * s.row_stride + s.col_offset + s.n_heads * s.head_dim)?;
    let params = RopeParams {
        n_rows: u32_of(op, s.n_rows)?,
        n_heads: u32_of(op, s.n_heads)?,
        head_dim: u32_of(op, s.head_dim)?,
        row_stride: u32_of(op, s.row_stride)?,
        col_offset: u32_of(op, s.col_offset)?,
        pos_offset: 0,
        theta: s.theta,
        ..Default::default()
    };
    let n = s.n_rows * s.n_heads * s.head_dim / 2;
    rec.dispatch(
        Kernel::Rope,
        "rope_rows",
        &[],
        &params,
        &[(1, x.binding()), (2, segs.positions.binding())],
        Groups::Linear(groups_for(n, 256)),
    );
    Ok(())
}

/// Causal attention of the stacked rows: segment rows attend to the cache's keys before the
/// segment (`k_cache`, `v_cache`) and to the segment's own rows up to themselves (`k_own`,
/// `v_own`, stacked as the queries are). `s` gives heads, strides and scale; `s.n_queries` must
/// be the rows; `s.n_keys` is ignored.
#[allow(clippy::too_many_arguments)]
pub fn attention_segments(
    rec: &mut Recorder<'_>,
    q: &GpuTensor,
    k_cache: &GpuTensor,
    v_cache: &GpuTensor,
    k_own: &GpuTensor,
    v_own: &GpuTensor,
    out: &GpuTensor,
    s: &AttentionShape,
    segs: &Segments,
) -> Result<(), GpuError> {
    let op = "attention_segments";
    ensure(s.causal, op, || "segments continue a causal sequence".to_string())?;
    ensure(s.n_queries == segs.rows, op, || format!("{} queries, the segments hold {} rows", s.n_queries, segs.rows))?;
    ensure(s.head_dim > 0 && s.head_dim <= MAX_HEAD_DIM, op, || format!("head_dim {} is outside 1..={MAX_HEAD_DIM}", s.head_dim))?;
    ensure(s.n_kv_heads > 0 && s.n_heads.is_multiple_of(s.n_kv_heads), op, || {
        format!("{} heads do not share {} kv heads evenly", s.n_heads, s.n_kv_heads)
    })?;
    let span = |heads: usize, stride: usize, offset: usize, rows: usize| match rows {
        0 => 0,
        r => (r - 1) * stride + offset + heads * s.head_dim,
    };
    let (rows, shared) = (segs.rows, segs.shared_keys());
    need(op, "q", q, span(s.n_heads, s.q_stride, s.q_offset, rows))?;
    need(op, "k cache", k_cache, span(s.n_kv_heads, s.k_stride, s.k_offset, shared))?;
    need(op, "v cache", v_cache, span(s.n_kv_heads, s.v_stride, s.v_offset, shared))?;
    need(op, "k own", k_own, span(s.n_kv_heads, s.k_stride, s.k_offset, rows))?;
    need(op, "v own", v_own, span(s.n_kv_heads, s.v_stride, s.v_offset, rows))?;
    need(op, "out", out, rows * s.n_heads * s.head_dim)?;
    // n_keys is unused: each row's keys are its segment's.
    let params = AttentionParams { n_queries: u32_of(op, rows)?, n_keys: 0, ..super::attention::uniform_of(op, s)? };
    let bindings = [
        (1, q.binding()),
        (2, k_cache.binding()),
        (3, v_cache.binding()),
        (4, out.binding()),
        (10, segs.table.binding()),
        (11, k_own.binding()),
        (12, v_own.binding()),
    ];
    rec.dispatch(Kernel::Attention, "main_segments", &[], &params, &bindings, Groups::Linear((rows * s.n_heads) as u32));
    Ok(())
}
