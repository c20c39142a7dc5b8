use super::{groups_for, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::AddParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// `a += b`, element by element (residual connections).
pub fn residual_add(rec: &mut Recorder<'_>, a: &GpuTensor, b: &GpuTensor) -> Result<(), GpuError> {
    ensure(a.len() == b.len(), "residual_add", || format!("a has {} elements, b {}", a.len(), b.len()))?;
    let params = AddParams { n: u32_of("residual_add", a.len())?, cols: 1, ..Default::default() };
    rec.dispatch(
        Kernel::Add,
        "residual_add",
        &[],
        &params,
        &[(1, a.binding()), (2, b.binding())],
        Groups::Linear(groups_for(a.len(), 256)),
    );
    Ok(())
}

/// `a[r, c] += b[c]` for every row of `a` (nn.Linear's bias).
pub fn bias_add(rec: &mut Recorder<'_>, a: &GpuTensor, b: &GpuTensor) -> Result<(), GpuError> {
    ensure(!b.is_empty() && a.len().is_multiple_of(b.len()), "bias_add", || {
        format!("a has {} elements, not rows of bias length {}", a.len(), b.len())
    })?;
    let params = AddParams { n: u32_of("bias_add", a.len())?, cols: u32_of("bias_add", b.len())?, ..Default::default() };
    rec.dispatch(Kernel::Add, "bias_add", &[], &params, &[(1, a.binding()), (2, b.binding())], Groups::Linear(groups_for(a.len(), 256)));
    Ok(())
}

/// `a[r, c] = a[r, c] * keep_fill[c] + keep_fill[cols + c]` for every row of `a` (`keep_fill` is
/// `[2 * cols]`): with keep 1 and fill 0 a column is unchanged, with keep 0 it becomes its fill
/// (a head's output columns zero- or mean-ablated).
pub fn blend_columns(rec: &mut Recorder<'_>, a: &GpuTensor, keep_fill: &GpuTensor) -> Result<(), GpuError> {
    let cols = keep_fill.len() / 2;
    ensure(cols > 0 && keep_fill.len().is_multiple_of(2) && a.len().is_multiple_of(cols), "blend_columns", || {
        format!("a has {} elements; keep_fill has {}, which is not twice a row length", a.len(), keep_fill.len())
    })?;
    let params = AddParams { n: u32_of("blend_columns", a.len())?, cols: u32_of("blend_columns", cols)?, ..Default::default() };
    rec.dispatch(
        Kernel::Add,
        "blend_columns",
        &[],
        &params,
        &[(1, a.binding()), (2, keep_fill.binding())],
        Groups::Linear(groups_for(a.len(), 256)),
    );
    Ok(())
}
