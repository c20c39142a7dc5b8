use super::{groups_for, need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::ExplainParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// Rows of `x` (`[rows, weight.len()]`) through the final norm with the scale of `reference`
/// frozen (the authors' `z(v)` before the unembedding).
pub fn fixed_rms_norm(
    rec: &mut Recorder<'_>,
    x: &GpuTensor,
    weight: &GpuTensor,
    reference: &GpuTensor,
    y: &GpuTensor,
    eps: f32,
) -> Result<(), GpuError> {
    let d = weight.len();
    ensure(d > 0 && x.len().is_multiple_of(d) && reference.len() == d, "fixed_rms_norm", || {
        format!("x {} / weight {d} / reference {}", x.len(), reference.len())
    })?;
    need("fixed_rms_norm", "y", y, x.len())?;
    let rows = x.len() / d;
    let p = ExplainParams { rows: u32_of("fixed_rms_norm", rows)?, cols: u32_of("fixed_rms_norm", d)?, eps, ..Default::default() };
    rec.dispatch(
        Kernel::Explain,
        "fixed_rms_norm",
        &[],
        &p,
        &[(1, x.binding()), (2, weight.binding()), (3, reference.binding()), (4, y.binding())],
        Groups::Linear(rows as u32),
    );
    Ok(())
}

/// `z [heads * head_dim]` as the block-diagonal `y [heads, heads * head_dim]`.
pub fn scatter_heads(rec: &mut Recorder<'_>, z: &GpuTensor, head_dim: usize, y: &GpuTensor) -> Result<(), GpuError> {
    ensure(head_dim > 0 && z.len().is_multiple_of(head_dim), "scatter_heads", || {
        format!("{} values are not heads of {head_dim}", z.len())
    })?;
    let (heads, cols) = (z.len() / head_dim, z.len());
    need("scatter_heads", "y", y, heads * cols)?;
    let p = ExplainParams {
        rows: u32_of("scatter_heads", heads)?,
        cols: u32_of("scatter_heads", cols)?,
        head_dim: head_dim as u32,
        ..Default::default()
    };
    rec.dispatch(
        Kernel::Explain,
        "scatter_heads",
        &[],
        &p,
        &[(1, z.binding()), (4, y.binding())],
        Groups::Linear(groups_for(heads * cols, 256)),
    );
    Ok(())
}

/// `alpha_j v_j` of query head `head` for every row `j` of the value cache `v [rows, v_stride]`
/// (kv head `kv_head`), in that head's columns of `y [rows, heads * head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn weighted_values(
    rec: &mut Recorder<'_>,
    v: &GpuTensor,
    v_stride: usize,
    alpha: &GpuTensor,
    head: usize,
    kv_head: usize,
    heads: usize,
    head_dim: usize,
    y: &GpuTensor,
) -> Result<(), GpuError> {
    let rows = alpha.len();
    ensure(head < heads && (kv_head + 1) * head_dim <= v_stride, "weighted_values", || {
        format!("head {head}/{heads}, kv head {kv_head} in a row of {v_stride}")
    })?;
    need("weighted_values", "v", v, rows * v_stride)?;
    let cols = heads * head_dim;
    need("weighted_values", "y", y, rows * cols)?;
    let p = ExplainParams {
        rows: u32_of("weighted_values", rows)?,
        cols: u32_of("weighted_values", cols)?,
        head: head as u32,
        head_dim: head_dim as u32,
        kv_head: kv_head as u32,
        v_stride: u32_of("weighted_values", v_stride)?,
        ..Default::default()
    };
    rec.dispatch(
        Kernel::Explain,
        "weighted_values",
        &[],
        &p,
        &[(1, v.binding()), (3, alpha.binding()), (4, y.binding())],
        Groups::Linear(groups_for(rows * cols, 256)),
    );
    Ok(())
}
