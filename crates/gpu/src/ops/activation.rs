use super::{groups_for, need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::ActivationParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

fn in_place(rec: &mut Recorder<'_>, entry: &'static str, x: &GpuTensor) -> Result<(), GpuError> {
    let params = ActivationParams { n: u32_of(entry, x.len())?, cols: 1, ..Default::default() };
    rec.dispatch(Kernel::Activation, entry, &[], &params, &[(1, x.binding())], Groups::Linear(groups_for(x.len(), 256)));
    Ok(())
}

/// Exact (erf) GELU in place: the Llava projector's activation.
pub fn gelu(rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<(), GpuError> {
    in_place(rec, "gelu", x)
}

/// The tanh form of GELU in place (`gelu_pytorch_tanh`): SigLIP's MLP activation.
pub fn gelu_tanh(rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<(), GpuError> {
    in_place(rec, "gelu_tanh", x)
}

/// `x * sigmoid(1.702 x)` in place: CLIP's MLP activation.
pub fn quick_gelu(rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<(), GpuError> {
    in_place(rec, "quick_gelu", x)
}

/// `y[r, c] = silu(x[r, c]) * x[r, n + c]` on the fused gate|up projection `x` = `[rows, 2n]`.
pub fn silu_mul(rec: &mut Recorder<'_>, x: &GpuTensor, n: usize, y: &GpuTensor) -> Result<(), GpuError> {
    ensure(n > 0 && x.len().is_multiple_of(2 * n), "silu_mul", || format!("x has {} elements, not rows of 2 * {n}", x.len()))?;
    let out = x.len() / 2;
    need("silu_mul", "y", y, out)?;
    let params = ActivationParams { n: u32_of("silu_mul", out)?, cols: u32_of("silu_mul", n)?, ..Default::default() };
    rec.dispatch(Kernel::Activation, "silu_mul", &[], &params, &[(1, x.binding()), (2, y.binding())], Groups::Linear(groups_for(out, 256)));
    Ok(())
}
