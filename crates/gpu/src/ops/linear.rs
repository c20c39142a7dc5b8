use llava_lens_tensor::cpu::PatchShape;
use llava_lens_tensor::DType;

use super::{groups_for, need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::{LinearParams, PatchParams};
use crate::recorder::Groups;
use crate::{GpuError, GpuMatrix, GpuTensor, Recorder};

/// `W_DTYPE` override of `shaders/linear.wgsl`.
fn w_dtype(d: DType) -> u32 {
    match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q8G32 => 2,
        DType::Q4G32 => 3,
        DType::Bf16 => unreachable!("bf16 matrices are converted on load"),
    }
}

fn dispatch_blocks(rec: &mut Recorder<'_>, entry: &'static str, w: &GpuMatrix, input: &GpuTensor, y: &GpuTensor, m: usize, y_stride: usize, groups: impl Fn(usize) -> Groups) -> Result<(), GpuError> {
    let ctx = rec.ctx();
    for b in &w.blocks {
        let params = LinearParams {
            m: u32_of(entry, m)?,
            k: u32_of(entry, w.cols)?,
            row_start: u32_of(entry, b.row_start)?,
            row_count: u32_of(entry, b.rows)?,
            y_stride: u32_of(entry, y_stride)?,
            ..Default::default()
        };
        let (input_binding, input_slot) = if entry == "embedding" { (input.binding(), 5) } else { (input.binding_vec4(), 1) };
        rec.dispatch(
            Kernel::Linear,
            entry,
            &[("W_DTYPE", w_dtype(w.dtype))],
            &params,
            &[(input_slot, input_binding), (2, y.binding()), (3, b.values_binding()), (4, b.scales_binding(ctx))],
            groups(b.rows),
        );
    }
    Ok(())
}

/// `y[m, n] = x[m, k] @ W[n, k]^T` (nn.Linear without bias), tiled for prefill.
pub fn matmul(rec: &mut Recorder<'_>, x: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    let k = w.cols;
    ensure(k > 0 && x.shape().last() == Some(&k), "matmul", || format!("x has shape {:?}, W has K = {k}", x.shape()))?;
    let m = x.len() / k;
    need("matmul", "y", y, m * w.rows)?;
    let m_tiles = groups_for(m, 64);
    dispatch_blocks(rec, "matmul", w, x, y, m, w.rows, |rows| Groups::Grid(groups_for(rows, 64), m_tiles))
}

/// `y[n] = W[n, k] @ x[k]`: the decode case, 8 rows per workgroup.
pub fn matvec(rec: &mut Recorder<'_>, x: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    ensure(x.len() == w.cols, "matvec", || format!("x has {} elements, W has K = {}", x.len(), w.cols))?;
    need("matvec", "y", y, w.rows)?;
    dispatch_blocks(rec, "matvec", w, x, y, 1, w.rows, |rows| Groups::Linear(groups_for(rows, 8)))
}

/// `y[t, :] = W[ids[t], :]`. Every block is dispatched; each writes the ids that fall in its rows.
/// Ids are not range-checked on the GPU (they may come from sampling): an id outside the table
/// leaves its row untouched.
pub fn embedding(rec: &mut Recorder<'_>, ids: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    let n = ids.len() * w.cols;
    need("embedding", "y", y, n)?;
    dispatch_blocks(rec, "embedding", w, ids, y, ids.len(), w.cols, |_| Groups::Linear(groups_for(n, 256)))
}

/// Patches of a CHW image as rows of `cols` (`[n_patches, C * P * P]`).
pub fn im2col(rec: &mut Recorder<'_>, pixels: &GpuTensor, s: PatchShape, cols: &GpuTensor) -> Result<(), GpuError> {
    ensure(s.patch > 0 && s.height % s.patch == 0 && s.width % s.patch == 0, "im2col", || format!("{}x{} image is not a whole number of {}-pixel patches", s.height, s.width, s.patch))?;
    ensure(pixels.len() == s.channels * s.height * s.width, "im2col", || format!("pixels hold {} elements, [C, H, W] = {}", pixels.len(), s.channels * s.height * s.width))?;
    let n = s.n_patches() * s.patch_len();
    need("im2col", "cols", cols, n)?;
    let params = PatchParams {
        channels: u32_of("im2col", s.channels)?,
        height: u32_of("im2col", s.height)?,
        width: u32_of("im2col", s.width)?,
        patch_size: u32_of("im2col", s.patch)?,
        grid_w: u32_of("im2col", s.grid_w())?,
        n_patches: u32_of("im2col", s.n_patches())?,
        ..Default::default()
    };
    rec.dispatch(Kernel::PatchEmbed, "im2col", &[], &params, &[(1, pixels.binding()), (2, cols.binding())], Groups::Linear(groups_for(n, 256)));
    Ok(())
}

/// CLIP's patch embedding: im2col into `cols`, then `matmul` with the conv weight
/// `[hidden, C * P * P]`, giving `y` = `[n_patches, hidden]`.
pub fn patch_embed(rec: &mut Recorder<'_>, pixels: &GpuTensor, s: PatchShape, cols: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    ensure(w.cols == s.patch_len(), "patch_embed", || format!("weight has K = {}, a patch has {} values", w.cols, s.patch_len()))?;
    im2col(rec, pixels, s, cols)?;
    matmul(rec, &cols.view(rec.ctx(), 0, &[s.n_patches(), s.patch_len()])?, w, y)
}
