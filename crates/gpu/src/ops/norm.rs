use super::{need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::NormParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

fn norm_params(op: &'static str, x: &GpuTensor, weight: &GpuTensor, y: &GpuTensor, eps: f32) -> Result<(NormParams, u32), GpuError> {
    let cols = weight.len();
    ensure(cols > 0 && x.len().is_multiple_of(cols), op, || format!("x has {} elements, not rows of {cols}", x.len()))?;
    need(op, "y", y, x.len())?;
    let rows = x.len() / cols;
    Ok((NormParams { rows: u32_of(op, rows)?, cols: u32_of(op, cols)?, eps, ..Default::default() }, u32_of(op, rows)?))
}

/// LlamaRMSNorm over rows of `weight.len()` elements.
pub fn rms_norm(rec: &mut Recorder<'_>, x: &GpuTensor, weight: &GpuTensor, y: &GpuTensor, eps: f32) -> Result<(), GpuError> {
    let (params, rows) = norm_params("rms_norm", x, weight, y, eps)?;
    rec.dispatch(
        Kernel::Norm,
        "rms_norm",
        &[],
        &params,
        &[(1, x.binding()), (2, weight.binding()), (4, y.binding())],
        Groups::Linear(rows),
    );
    Ok(())
}

/// nn.LayerNorm over rows of `weight.len()` elements.
pub fn layer_norm(
    rec: &mut Recorder<'_>,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    y: &GpuTensor,
    eps: f32,
) -> Result<(), GpuError> {
    ensure(bias.len() == weight.len(), "layer_norm", || format!("bias has {} elements, weight {}", bias.len(), weight.len()))?;
    let (params, rows) = norm_params("layer_norm", x, weight, y, eps)?;
    rec.dispatch(
        Kernel::Norm,
        "layer_norm",
        &[],
        &params,
        &[(1, x.binding()), (2, weight.binding()), (3, bias.binding()), (4, y.binding())],
        Groups::Linear(rows),
    );
    Ok(())
}
