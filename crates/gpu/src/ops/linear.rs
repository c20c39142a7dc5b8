use llava_lens_tensor::DType;
use llava_lens_tensor::cpu::PatchShape;

use super::{groups_for, need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::{LinearParams, PatchParams};
use crate::recorder::Groups;
use crate::{GpuContext, GpuError, GpuMatrix, GpuTensor, Recorder};

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

#[allow(clippy::too_many_arguments)]
fn dispatch_blocks(
    rec: &mut Recorder<'_>,
    kernel: Kernel,
    entry: &'static str,
    extra_overrides: &[(&'static str, u32)],
    w: &GpuMatrix,
    input: &GpuTensor,
    y: &GpuTensor,
    m: usize,
    y_stride: usize,
    groups: impl Fn(usize) -> Groups,
) -> Result<(), GpuError> {
    let ctx = rec.ctx();
    let mut overrides = vec![("W_DTYPE", w_dtype(w.dtype))];
    overrides.extend_from_slice(extra_overrides);
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
            kernel,
            entry,
            &overrides,
            &params,
            &[(input_slot, input_binding), (2, y.binding()), (3, b.values_binding()), (4, b.scales_binding(ctx))],
            groups(b.rows),
        );
    }
    Ok(())
}

/// Output tile of the GEMM entry points of `shaders/linear.wgsl` and `shaders/matmul_k32.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmTile {
    /// `matmul`: 64 x 64, 4 x 4 per thread, K 16 at a time.
    Small,
    /// `matmul_wide`: 128 x 128, 8 x 8 per thread.
    Wide,
    /// `matmul_k32`: 64 x 64, K 32 at a time through two buffers (32 KiB of workgroup memory;
    /// K a multiple of 4).
    SmallK32,
    /// `matmul_f16`: `SmallK32`'s schedule in f16 arithmetic with f32 accumulation (shader-f16;
    /// K a multiple of 4). Within 6 f16 roundoffs of the absolute dot product
    /// (shaders/matmul_f16.wgsl), so never the f32 path that the logits parity runs on.
    SmallF16,
}

impl GemmTile {
    /// The tile for an `m x n` output, from measurements on an H200 at m = 600
    /// (docs/BENCHMARKS.md): 128 x 128 tiles won by 7-16 % at n = 11008 in every dtype, 64 x 64
    /// tiles by 11-13 % at n = 4096 (more workgroups in flight). `SmallK32` and `SmallF16` are not
    /// picked until a GPU has measured them against `Small` (scripts/bench-gpu.sh runs them side
    /// by side); `SmallF16` would also change results beyond the f32 parity tolerance.
    pub fn for_shape(m: usize, n: usize) -> GemmTile {
        if m >= 256 && n >= 8192 { GemmTile::Wide } else { GemmTile::Small }
    }

    /// The tile `matmul` uses: the f16 one where the context asks for it and can run it
    /// (`ReducedPrecision::f16_gemm`), else [`GemmTile::for_shape`].
    pub fn for_context(ctx: &GpuContext, m: usize, n: usize, k: usize) -> GemmTile {
        if ctx.reduced_precision().f16_gemm && GemmTile::SmallF16.runs(ctx, k) { GemmTile::SmallF16 } else { GemmTile::for_shape(m, n) }
    }

    /// Whether this device and K can run the tile.
    pub fn runs(self, ctx: &GpuContext, k: usize) -> bool {
        let (kernel, _, _) = self.kernel_entry_size();
        let vec4_rows = matches!(self, GemmTile::SmallK32 | GemmTile::SmallF16);
        ctx.limits().max_compute_workgroup_storage_size >= kernel.workgroup_storage_bytes()
            && ctx.features().contains(kernel.required_features())
            && (!vec4_rows || k.is_multiple_of(4))
    }

    fn kernel_entry_size(self) -> (Kernel, &'static str, usize) {
        match self {
            GemmTile::Small => (Kernel::Linear, "matmul", 64),
            GemmTile::Wide => (Kernel::Linear, "matmul_wide", 128),
            GemmTile::SmallK32 => (Kernel::MatmulK32, "matmul_k32", 64),
            GemmTile::SmallF16 => (Kernel::MatmulF16, "matmul_f16", 64),
        }
    }
}

/// `y[m, n] = x[m, k] @ W[n, k]^T` (nn.Linear without bias), tiled for prefill.
/// With the tile [`GemmTile::for_context`] picks.
pub fn matmul(rec: &mut Recorder<'_>, x: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    let m = x.len() / w.cols.max(1);
    matmul_tiled(rec, x, w, y, GemmTile::for_context(rec.ctx(), m, w.rows, w.cols))
}

/// [`matmul`] with an explicit tile (tests and benchmarks cover each).
pub fn matmul_tiled(rec: &mut Recorder<'_>, x: &GpuTensor, w: &GpuMatrix, y: &GpuTensor, tile: GemmTile) -> Result<(), GpuError> {
    let k = w.cols;
    ensure(k > 0 && x.shape().last() == Some(&k), "matmul", || format!("x has shape {:?}, W has K = {k}", x.shape()))?;
    ensure(tile.runs(rec.ctx(), k), "matmul", || {
        format!(
            "the {tile:?} tile needs K a multiple of 4 (K = {k}), {} bytes of workgroup memory (the device allows {}) and {:?}",
            tile.kernel_entry_size().0.workgroup_storage_bytes(),
            rec.ctx().limits().max_compute_workgroup_storage_size,
            tile.kernel_entry_size().0.required_features()
        )
    })?;
    let m = x.len() / k;
    need("matmul", "y", y, m * w.rows)?;
    let (kernel, entry, size) = tile.kernel_entry_size();
    let m_tiles = groups_for(m, size);
    dispatch_blocks(rec, kernel, entry, &[], w, x, y, m, w.rows, |rows| Groups::Grid(groups_for(rows, size), m_tiles))
}

/// Lanes per row of `matvec` (its `MV_LANES`): 64 up to K = 4096, 128 for down_proj's K = 11008.
/// Measured on an H200 (docs/BENCHMARKS.md): at K = 11008, 128 lanes beat 32 and 256 (64 was
/// not measured there after the warm-up fix); at K = 4096, 64 lanes matched or beat the others.
pub fn matvec_lanes(k: usize) -> u32 {
    (k / 128).next_power_of_two().clamp(64, 256) as u32
}

/// Where the partial sums of a `matvec` row meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatvecKernel {
    /// `linear.wgsl:matvec`: a workgroup-memory tree (core WebGPU; the reference).
    Shared,
    /// `matvec_subgroup.wgsl`: subgroup shuffles and at most one barrier.
    Subgroup,
    /// `matvec_dot4.wgsl`: Q8G32 / Q4G32 weights against activations quantised to 8 bits per
    /// group of 32, with packed 4 x 8-bit dot products (core WGSL). Within
    /// `sum_k |W[n, k]| * d_x / 2` of the f32 matvec, so only where chosen: never picked by
    /// `for_context` until a GPU measures it faster (scripts/bench-gpu.sh runs it beside the others).
    Dot4,
}

impl MatvecKernel {
    /// The subgroup kernel where the device has subgroups, natively. In the browser WGSL needs
    /// `enable subgroups;`, which naga (the native front end) rejects, so one source cannot serve
    /// both; the page keeps the core kernel until that variant can be tested in a browser that
    /// has subgroups (the CI's SwiftShader has none).
    pub fn for_context(ctx: &GpuContext) -> MatvecKernel {
        if ctx.has_subgroups() && cfg!(not(target_arch = "wasm32")) { MatvecKernel::Subgroup } else { MatvecKernel::Shared }
    }

    /// The kernel `matvec` uses for weights of `dtype` with `k` columns: the integer-dot one for
    /// Q8/Q4 where the context asks for it (`ReducedPrecision::int8_matvec`), else
    /// [`MatvecKernel::for_context`].
    pub fn for_matrix(ctx: &GpuContext, dtype: DType, k: usize) -> MatvecKernel {
        if ctx.reduced_precision().int8_matvec && dtype.is_quantized() && k.is_multiple_of(32) {
            MatvecKernel::Dot4
        } else {
            MatvecKernel::for_context(ctx)
        }
    }

    fn kernel_and_entry(self) -> (Kernel, &'static str) {
        match self {
            MatvecKernel::Shared => (Kernel::Linear, "matvec"),
            MatvecKernel::Subgroup => (Kernel::MatvecSubgroup, "matvec_subgroup"),
            MatvecKernel::Dot4 => (Kernel::MatvecDot4, "matvec_dot4"),
        }
    }
}

/// `y[n] = W[n, k] @ x[k]`: the decode case, `4 * 256 / lanes` rows per workgroup.
/// With the kernel [`MatvecKernel::for_matrix`] picks.
pub fn matvec(rec: &mut Recorder<'_>, x: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    let kernel = MatvecKernel::for_matrix(rec.ctx(), w.dtype, w.cols);
    matvec_using(rec, x, w, y, matvec_lanes(w.cols), kernel)
}

/// [`matvec`] with an explicit `MV_LANES` (a power of two from 8 to 256): for tests and tuning.
pub fn matvec_with_lanes(rec: &mut Recorder<'_>, x: &GpuTensor, w: &GpuMatrix, y: &GpuTensor, lanes: u32) -> Result<(), GpuError> {
    let kernel = MatvecKernel::for_matrix(rec.ctx(), w.dtype, w.cols);
    matvec_using(rec, x, w, y, lanes, kernel)
}

/// [`matvec`] with explicit lanes and kernel: tests and benchmarks run both side by side.
pub fn matvec_using(
    rec: &mut Recorder<'_>,
    x: &GpuTensor,
    w: &GpuMatrix,
    y: &GpuTensor,
    lanes: u32,
    kernel: MatvecKernel,
) -> Result<(), GpuError> {
    ensure(x.len() == w.cols, "matvec", || format!("x has {} elements, W has K = {}", x.len(), w.cols))?;
    // 8 and 16 are never picked by `matvec_lanes`; they let an adapter with 8-wide subgroups
    // (lavapipe) test the subgroup kernel's path where a row fits in one subgroup.
    ensure(lanes.is_power_of_two() && (8..=256).contains(&lanes), "matvec", || {
        format!("{lanes} lanes per row; expected a power of two from 8 to 256")
    })?;
    let (kernel, entry) = kernel.kernel_and_entry();
    ensure(rec.ctx().features().contains(kernel.required_features()), "matvec", || {
        format!("{} needs {:?}, which this adapter does not have", kernel.file(), kernel.required_features())
    })?;
    need("matvec", "y", y, w.rows)?;
    let rows_per_group = 4 * 256 / lanes as usize;
    if kernel == Kernel::MatvecDot4 {
        return matvec_dot4(rec, x, w, y, lanes, rows_per_group);
    }
    dispatch_blocks(rec, kernel, entry, &[("MV_LANES", lanes)], w, x, y, 1, w.rows, |rows| Groups::Linear(groups_for(rows, rows_per_group)))
}

/// `x` quantised per group of 32 (in the byte order of `w`'s words), then the integer-dot matvec
/// of every block against it: one `quantize_x` dispatch for the whole matrix.
fn matvec_dot4(
    rec: &mut Recorder<'_>,
    x: &GpuTensor,
    w: &GpuMatrix,
    y: &GpuTensor,
    lanes: u32,
    rows_per_group: usize,
) -> Result<(), GpuError> {
    ensure(w.dtype.is_quantized() && w.cols.is_multiple_of(32), "matvec", || {
        format!("the integer-dot matvec needs Q8G32 or Q4G32 weights with K a multiple of 32, not {} with K = {}", w.dtype, w.cols)
    })?;
    let ctx = rec.ctx();
    let groups = w.cols / 32;
    // Both are written in full by quantize_x before matvec_dot4 reads them.
    let xq = GpuTensor::output(ctx, &[groups * 8], "x quantised");
    let xs = GpuTensor::output(ctx, &[groups * 2], "x scales and sums");
    let overrides = [("W_DTYPE", w_dtype(w.dtype)), ("MV_LANES", lanes)];
    let quantize = LinearParams { k: u32_of("matvec", w.cols)?, ..Default::default() };
    rec.dispatch(
        Kernel::MatvecDot4,
        "quantize_x",
        &overrides,
        &quantize,
        &[(1, x.binding_vec4()), (6, xq.binding()), (7, xs.binding())],
        Groups::Linear(groups_for(groups, 64)),
    );
    for b in &w.blocks {
        let params = LinearParams {
            m: 1,
            k: u32_of("matvec", w.cols)?,
            row_start: u32_of("matvec", b.row_start)?,
            row_count: u32_of("matvec", b.rows)?,
            y_stride: u32_of("matvec", w.rows)?,
            ..Default::default()
        };
        rec.dispatch(
            Kernel::MatvecDot4,
            "matvec_dot4",
            &overrides,
            &params,
            &[(2, y.binding()), (3, b.values_binding()), (4, b.scales_binding(ctx)), (6, xq.binding()), (7, xs.binding())],
            Groups::Linear(groups_for(b.rows, rows_per_group)),
        );
    }
    Ok(())
}

/// `y[t, :] = W[ids[t], :]`. Every block is dispatched; each writes the ids that fall in its rows.
/// Ids are not range-checked on the GPU (they may come from sampling): an id outside the table
/// leaves its row untouched.
pub fn embedding(rec: &mut Recorder<'_>, ids: &GpuTensor, w: &GpuMatrix, y: &GpuTensor) -> Result<(), GpuError> {
    let n = ids.len() * w.cols;
    need("embedding", "y", y, n)?;
    dispatch_blocks(rec, Kernel::Linear, "embedding", &[], w, ids, y, ids.len(), w.cols, |_| Groups::Linear(groups_for(n, 256)))
}

/// Patches of a CHW image as rows of `cols` (`[n_patches, C * P * P]`).
pub fn im2col(rec: &mut Recorder<'_>, pixels: &GpuTensor, s: PatchShape, cols: &GpuTensor) -> Result<(), GpuError> {
    // Pixels past the last whole patch are ignored, as a stride-`patch` Conv2d ignores them.
    ensure(s.patch > 0 && s.patch <= s.height && s.patch <= s.width, "im2col", || {
        format!("{}x{} image is smaller than one {}-pixel patch", s.height, s.width, s.patch)
    })?;
    ensure(pixels.len() == s.channels * s.height * s.width, "im2col", || {
        format!("pixels hold {} elements, [C, H, W] = {}", pixels.len(), s.channels * s.height * s.width)
    })?;
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
    rec.dispatch(
        Kernel::PatchEmbed,
        "im2col",
        &[],
        &params,
        &[(1, pixels.binding()), (2, cols.binding())],
        Groups::Linear(groups_for(n, 256)),
    );
    Ok(())
}

/// CLIP's patch embedding: im2col into `cols`, then `matmul` with the conv weight
/// `[hidden, C * P * P]`, giving `y` = `[n_patches, hidden]`.
pub fn patch_embed(
    rec: &mut Recorder<'_>,
    pixels: &GpuTensor,
    s: PatchShape,
    cols: &GpuTensor,
    w: &GpuMatrix,
    y: &GpuTensor,
) -> Result<(), GpuError> {
    ensure(w.cols == s.patch_len(), "patch_embed", || format!("weight has K = {}, a patch has {} values", w.cols, s.patch_len()))?;
    im2col(rec, pixels, s, cols)?;
    matmul(rec, &cols.view(rec.ctx(), 0, &[s.n_patches(), s.patch_len()])?, w, y)
}
