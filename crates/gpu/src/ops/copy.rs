use super::{groups_for, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::CopyParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// `dst = src` on the compute units (16 bytes per thread). Lengths must match and be a multiple
/// of 4 elements.
pub fn copy(rec: &mut Recorder<'_>, src: &GpuTensor, dst: &GpuTensor) -> Result<(), GpuError> {
    ensure(src.len() == dst.len() && src.len().is_multiple_of(4), "copy", || {
        format!("{} elements into {}; both must match and be a multiple of 4", src.len(), dst.len())
    })?;
    let params = CopyParams { n: u32_of("copy", src.len())?, ..Default::default() };
    rec.dispatch(
        Kernel::Copy,
        "copy",
        &[],
        &params,
        &[(1, src.binding()), (2, dst.binding())],
        Groups::Linear(groups_for(src.len() / 4, 256)),
    );
    Ok(())
}
