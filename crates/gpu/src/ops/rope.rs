use llava_lens_tensor::cpu::RopeShape;

use super::{groups_for, need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::RopeParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// Rotary embedding in place (HF rotate_half convention), positions `pos_offset + row`.
pub fn rope(rec: &mut Recorder<'_>, x: &GpuTensor, s: RopeShape) -> Result<(), GpuError> {
    ensure(s.head_dim.is_multiple_of(2) && s.head_dim > 0, "rope", || format!("head_dim {} must be even", s.head_dim))?;
    ensure(s.col_offset + s.n_heads * s.head_dim <= s.row_stride, "rope", || {
        format!("heads end at column {} past the row stride {}", s.col_offset + s.n_heads * s.head_dim, s.row_stride)
    })?;
    if s.n_rows > 0 {
        need("rope", "x", x, (s.n_rows - 1) * s.row_stride + s.col_offset + s.n_heads * s.head_dim)?;
    }
    let params = RopeParams {
        n_rows: u32_of("rope", s.n_rows)?,
        n_heads: u32_of("rope", s.n_heads)?,
        head_dim: u32_of("rope", s.head_dim)?,
        row_stride: u32_of("rope", s.row_stride)?,
        col_offset: u32_of("rope", s.col_offset)?,
        pos_offset: u32_of("rope", s.pos_offset)?,
        theta: s.theta,
        ..Default::default()
    };
    let n = s.n_rows * s.n_heads * s.head_dim / 2;
    rec.dispatch(Kernel::Rope, "rope", &[], &params, &[(1, x.binding())], Groups::Linear(groups_for(n, 256)));
    Ok(())
}
