use llava_lens_gpu::ops::{self, GemmTile, MatvecKernel};
use llava_lens_gpu::{GpuMatrix, Recorder};
use llava_lens_tensor::cpu::{self, PatchShape};
use llava_lens_tensor::{DType, HostMatrix, Rng};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, nmse, upload};

/// Every dtype with the tolerance of GPU vs CPU on the *same* decoded weights: only the order
/// of f32 accumulation differs.
const DTYPES: [DType; 4] = [DType::F32, DType::F16, DType::Q8G32, DType::Q4G32];
const TOL: Tol = Tol::new(2e-5, 2e-5);

/// (m, n, k): 1s, primes, and sizes straddling the 64 and 128 GEMM tiles, the 16-wide K step and
/// the 8-row matvec group.
const MATMUL_SHAPES: [(usize, usize, usize); 7] =
    [(1, 1, 32), (3, 7, 64), (65, 67, 96), (17, 129, 160), (64, 64, 32), (5, 13, 256), (131, 137, 64)];
/// Shapes with K not a multiple of 32: f32/f16 only (quantised formats need whole groups). K = 20
/// takes the GEMM's vec4 loader with f16 rows starting mid-word-pair; 13 and 67 its scalar loader.
const ODD_K_SHAPES: [(usize, usize, usize); 4] = [(1, 1, 1), (2, 5, 13), (7, 71, 67), (66, 131, 20)];

fn weights(seed: u64, n: usize, k: usize, dtype: DType) -> HostMatrix {
    let w = Rng::new(seed).normal(n * k, 0.5);
    HostMatrix::from_f32(n, k, &w, dtype).unwrap()
}

fn run_matmul(m: usize, n: usize, k: usize, dtype: DType, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.uniform(m * k, -1.0, 1.0);
    let host = weights(seed + 1, n, k, dtype);
    let w = GpuMatrix::upload(ctx(), &host, "w").unwrap();
    let want = cpu::matmul(&x, m, &host);
    for tile in [GemmTile::Small, GemmTile::Wide, GemmTile::SmallK32] {
        if !tile.runs(ctx(), k) {
            // K not a multiple of 4 (the odd shapes); lavapipe's 32 KiB of workgroup memory
            // runs SmallK32 on every other shape.
            assert!(!k.is_multiple_of(4) || !ctx().adapter_info.name.contains("llvmpipe"), "lavapipe cannot run {tile:?}");
            continue;
        }
        let y = Guarded::new("matmul y", &[m, n]);
        let mut rec = Recorder::new(ctx(), "matmul");
        ops::matmul_tiled(&mut rec, &upload(&x, &[m, k]), &w, y.tensor(), tile).unwrap();
        rec.submit();
        assert_close(&format!("matmul {m}x{n}x{k} {dtype} {tile:?}"), &y.read(), &want, TOL);
    }
}

fn run_matvec(n: usize, k: usize, dtype: DType, seed: u64) {
    run_matvec_using(n, k, dtype, seed, MatvecKernel::Shared);
}

fn run_matvec_using(n: usize, k: usize, dtype: DType, seed: u64, kernel: MatvecKernel) {
    let x = Rng::new(seed).uniform(k, -1.0, 1.0);
    let host = weights(seed + 1, n, k, dtype);
    let w = GpuMatrix::upload(ctx(), &host, "w").unwrap();
    let y = Guarded::new("matvec y", &[n]);
    let mut rec = Recorder::new(ctx(), "matvec");
    ops::matvec_using(&mut rec, &upload(&x, &[k]), &w, y.tensor(), ops::matvec_lanes(k), kernel).unwrap();
    rec.submit();
    assert_close(&format!("matvec {n}x{k} {dtype} {kernel:?}"), &y.read(), &cpu::matvec(&x, &host), TOL);
}

/// f16's unit roundoff.
const F16_U: f64 = 1.0 / 2048.0;

/// The f16-arithmetic GEMM against the exact product, element by element, within the bound its
/// shader states: 6u * sum_k |X W| (u = 2^-11) plus f32 accumulation. The weights of every dtype
/// are decoded first, so only the kernel's own rounding is measured. A larger-than-unit scale of
/// X checks that the bound is relative to the magnitudes, not absolute.
#[test]
fn f16_matmul_stays_within_its_error_bound() {
    if !ctx().has_shader_f16() {
        assert!(!ctx().adapter_info.name.contains("llvmpipe"), "lavapipe lost shader-f16: the f16 GEMM went untested");
        return;
    }
    let mut worst = 0.0f64;
    for dtype in DTYPES {
        // K = 20 (a partial tile of 32; not whole groups, so f32/f16 weights only).
        let odd: &[(usize, usize, usize)] = if dtype.is_quantized() { &[] } else { &[(66, 131, 20)] };
        for (i, &(m, n, k)) in MATMUL_SHAPES.iter().chain(&[(70, 65, 1024)]).chain(odd).enumerate() {
            let mut rng = Rng::new(700 + i as u64);
            let x: Vec<f32> = rng.uniform(m * k, -1.0, 1.0).iter().map(|v| v * 40.0).collect();
            let host = weights(701 + i as u64, n, k, dtype);
            let w = GpuMatrix::upload(ctx(), &host, "w").unwrap();
            let y = Guarded::new("matmul_f16 y", &[m, n]);
            let mut rec = Recorder::new(ctx(), "matmul_f16");
            ops::matmul_tiled(&mut rec, &upload(&x, &[m, k]), &w, y.tensor(), GemmTile::SmallF16).unwrap();
            rec.submit();
            let got = y.read();
            let wf = host.to_f32();
            for r in 0..m {
                for c in 0..n {
                    let (xr, wr) = (&x[r * k..(r + 1) * k], &wf[c * k..(c + 1) * k]);
                    let exact: f64 = xr.iter().zip(wr).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let magnitude: f64 = xr.iter().zip(wr).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                    // f32 accumulation of k / 4 partials adds at most k / 4 roundings of 2^-24.
                    let bound = (6.0 * F16_U + (k as f64 / 4.0 + 1.0) * f32::EPSILON as f64) * magnitude + 1e-6;
                    let err = (got[r * n + c] as f64 - exact).abs();
                    assert!(err <= bound, "matmul_f16 {m}x{n}x{k} {dtype} [{r}, {c}]: error {err} above the bound {bound}");
                    worst = worst.max(err / magnitude.max(1e-30));
                }
            }
        }
    }
    eprintln!("matmul_f16: largest error / sum_k |X W| = {worst:.3e} (bound 6u = {:.3e})", 6.0 * F16_U);
    // The kernel really is f16: an f32 kernel would be a thousand times closer.
    assert!(worst > 1e-5, "largest error / magnitude {worst}: this is not f16 arithmetic");
}

#[test]
fn matmul_matches_cpu() {
    for dtype in DTYPES {
        for (i, &(m, n, k)) in MATMUL_SHAPES.iter().enumerate() {
            run_matmul(m, n, k, dtype, 100 + i as u64);
        }
    }
    for dtype in [DType::F32, DType::F16] {
        for (i, &(m, n, k)) in ODD_K_SHAPES.iter().enumerate() {
            run_matmul(m, n, k, dtype, 200 + i as u64);
        }
    }
}

/// Both reductions: the workgroup tree everywhere, and the subgroup one on adapters with
/// subgroups (lavapipe has them, 8 wide: rows of 8 lanes are reduced by shuffles alone, rows of
/// 16-256 lanes also through workgroup memory).
fn matvec_kernels() -> Vec<MatvecKernel> {
    let mut kernels = vec![MatvecKernel::Shared];
    if ctx().has_subgroups() {
        kernels.push(MatvecKernel::Subgroup);
    }
    kernels
}

#[test]
fn matvec_matches_cpu_at_every_lane_count() {
    let (n, k) = (45, 2080);
    let x = Rng::new(90).uniform(k, -1.0, 1.0);
    for dtype in DTYPES {
        let host = weights(91, n, k, dtype);
        let w = GpuMatrix::upload(ctx(), &host, "w").unwrap();
        for kernel in matvec_kernels() {
            for lanes in [8, 16, 32, 64, 128, 256] {
                let y = Guarded::new("matvec y", &[n]);
                let mut rec = Recorder::new(ctx(), "matvec");
                ops::matvec_using(&mut rec, &upload(&x, &[k]), &w, y.tensor(), lanes, kernel).unwrap();
                rec.submit();
                assert_close(&format!("matvec {n}x{k} {dtype} {kernel:?} {lanes} lanes"), &y.read(), &cpu::matvec(&x, &host), TOL);
            }
        }
    }
}

/// The subgroup kernel on every shape the tree kernel is checked on (odd K included), so a
/// wrong run of lanes or a dropped subgroup shows up as wrong rows.
#[test]
fn subgroup_matvec_matches_cpu() {
    if !ctx().has_subgroups() {
        // Lavapipe (the tests' adapter here and in CI) has subgroups: a silent skip there would
        // hide a broken kernel. Other adapters without them never run it.
        assert!(!ctx().adapter_info.name.contains("llvmpipe"), "lavapipe lost its subgroups: the subgroup kernel went untested");
        return;
    }
    let shapes = MATMUL_SHAPES.iter().map(|&(_, n, k)| (n, k)).chain([(9, 1024), (37, 8192), (5, 16384)]);
    for (i, (n, k)) in shapes.enumerate() {
        for dtype in DTYPES {
            run_matvec_using(n, k, dtype, 500 + i as u64, MatvecKernel::Subgroup);
        }
    }
    for (i, &(_, n, k)) in ODD_K_SHAPES.iter().enumerate() {
        for dtype in [DType::F32, DType::F16] {
            run_matvec_using(n, k, dtype, 600 + i as u64, MatvecKernel::Subgroup);
        }
    }
}

#[test]
fn matvec_matches_cpu() {
    for dtype in DTYPES {
        for (i, &(_, n, k)) in MATMUL_SHAPES.iter().enumerate() {
            run_matvec(n, k, dtype, 300 + i as u64);
        }
        // Long rows: 128 and 256 lanes per row (matvec_lanes), as down_proj's K = 11008.
        run_matvec(9, 1024, dtype, 310);
        run_matvec(37, 8192, dtype, 311);
        run_matvec(5, 16384, dtype, 312);
    }
    for dtype in [DType::F32, DType::F16] {
        for (i, &(_, n, k)) in ODD_K_SHAPES.iter().enumerate() {
            run_matvec(n, k, dtype, 400 + i as u64);
        }
    }
}

/// The integer-dot matvec against the f32 matvec on the same decoded weights, row by row, within
/// the bound of rounding the activations: sum_k |W[n, k]| * d_x(group of k) / 2 (d_x = the
/// group's max |x| / 127), plus f32 slack. Lanes from 8 to 256 and several row blocks' worth of
/// shapes; x spans magnitudes so groups get different scales.
#[test]
fn dot4_matvec_stays_within_its_rounding_bound() {
    let mut worst = 0.0f64;
    for dtype in [DType::Q8G32, DType::Q4G32] {
        for (i, &(n, k)) in [(1, 32), (7, 64), (45, 2080), (129, 256), (37, 8192), (5, 16384)].iter().enumerate() {
            let mut rng = Rng::new(800 + i as u64);
            let x: Vec<f32> = rng.uniform(k, -1.0, 1.0).iter().enumerate().map(|(j, v)| v * (1.0 + (j / 32 % 5) as f32 * 3.0)).collect();
            let host = weights(801 + i as u64, n, k, dtype);
            let w = GpuMatrix::upload(ctx(), &host, "w").unwrap();
            let exact = cpu::matvec(&x, &host);
            let wf = host.to_f32();
            let d: Vec<f64> = x.chunks(32).map(|g| g.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64 / 127.0).collect();
            for lanes in [8, 64, ops::matvec_lanes(k), 256] {
                let y = Guarded::new("matvec_dot4 y", &[n]);
                let mut rec = Recorder::new(ctx(), "matvec_dot4");
                ops::matvec_using(&mut rec, &upload(&x, &[k]), &w, y.tensor(), lanes, MatvecKernel::Dot4).unwrap();
                rec.submit();
                let got = y.read();
                for r in 0..n {
                    let row = &wf[r * k..(r + 1) * k];
                    let rounding: f64 = row.iter().enumerate().map(|(j, v)| v.abs() as f64 * d[j / 32] / 2.0).sum();
                    let magnitude: f64 = row.iter().zip(&x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                    let bound = rounding * (1.0 + 1e-4) + 1e-5 * magnitude + 1e-6;
                    let err = (got[r] as f64 - exact[r] as f64).abs();
                    assert!(err <= bound, "matvec_dot4 {n}x{k} {dtype} {lanes} lanes row {r}: error {err} above the bound {bound}");
                    worst = worst.max(err / rounding);
                }
            }
        }
    }
    // Rounding errors mostly cancel, so the bound is loose; but a kernel that did not round the
    // activations at all would use a hundred-thousandth of it.
    eprintln!("matvec_dot4: largest error / rounding bound = {worst:.3e}");
    assert!(worst > 1e-3, "largest error / bound {worst}: the activations were not quantised");
}

#[test]
fn dot4_matvec_refuses_float_weights_and_partial_groups() {
    for (dtype, k) in [(DType::F32, 64), (DType::F16, 64), (DType::F32, 20)] {
        let w = GpuMatrix::upload(ctx(), &weights(1, 3, k, dtype), "w").unwrap();
        let y = Guarded::new("y", &[3]);
        let mut rec = Recorder::new(ctx(), "matvec_dot4");
        let err = ops::matvec_using(&mut rec, &upload(&vec![0.5; k], &[k]), &w, y.tensor(), 64, MatvecKernel::Dot4).unwrap_err();
        assert!(err.to_string().contains("Q8G32 or Q4G32"), "{err}");
    }
}

/// The quantisation error itself, against the f32 weights (NMSE, as llama.cpp's backend tests).
#[test]
fn quantized_matvec_stays_near_f32() {
    let (n, k) = (37, 512);
    let x = Rng::new(5).uniform(k, -1.0, 1.0);
    let exact = cpu::matvec(&x, &weights(6, n, k, DType::F32));
    for (dtype, max_nmse) in [(DType::F16, 1e-6), (DType::Q8G32, 1e-4), (DType::Q4G32, 1.5e-2)] {
        let w = GpuMatrix::upload(ctx(), &weights(6, n, k, dtype), "w").unwrap();
        let y = Guarded::new("y", &[n]);
        let mut rec = Recorder::new(ctx(), "matvec");
        ops::matvec(&mut rec, &upload(&x, &[k]), &w, y.tensor()).unwrap();
        rec.submit();
        let e = nmse(&y.read(), &exact);
        assert!(e < max_nmse, "{dtype}: NMSE {e} vs f32 exceeds {max_nmse}");
    }
}

#[test]
fn embedding_matches_cpu() {
    for dtype in DTYPES {
        for &(vocab, d, t) in &[(1usize, 32usize, 1usize), (37, 64, 5), (101, 96, 17)] {
            let host = weights(vocab as u64, vocab, d, dtype);
            let ids: Vec<u32> = {
                let mut r = Rng::new(d as u64);
                (0..t).map(|_| r.below(vocab as u64) as u32).collect()
            };
            let w = GpuMatrix::upload(ctx(), &host, "embed").unwrap();
            let y = Guarded::new("embedding y", &[t, d]);
            let mut rec = Recorder::new(ctx(), "embedding");
            let ids_t = llava_lens_gpu::GpuTensor::from_u32(ctx(), &ids, &[t], "ids").unwrap();
            ops::embedding(&mut rec, &ids_t, &w, y.tensor()).unwrap();
            rec.submit();
            assert_close(&format!("embedding {vocab}x{d} {dtype}"), &y.read(), &cpu::embedding(&ids, &host).unwrap(), Tol::new(0.0, 0.0));
        }
    }
}

#[test]
fn patch_embed_matches_cpu() {
    // CLIP geometry in miniature: 3 channels, 14-pixel patches, a non-square 28x42 image (2x3
    // grid), weight K = 588 (not a multiple of 32, as in CLIP, so f32/f16 only); and SigLIP
    // so400m's, whose image is not a whole number of patches (31x45: the same 2x3 grid, the
    // rest ignored).
    for (s, dtype) in [(28, 42), (31, 45)]
        .into_iter()
        .flat_map(|(h, w)| [DType::F32, DType::F16].map(|d| (PatchShape { channels: 3, height: h, width: w, patch: 14 }, d)))
    {
        let pixels = Rng::new(21).uniform(3 * s.height * s.width, -2.0, 2.0);
        let host = weights(22, 19, s.patch_len(), dtype);
        let w = GpuMatrix::upload(ctx(), &host, "patch_embedding").unwrap();
        let cols = Guarded::new("im2col", &[s.n_patches(), s.patch_len()]);
        let y = Guarded::new("patch_embed y", &[s.n_patches(), 19]);
        let mut rec = Recorder::new(ctx(), "patch_embed");
        ops::patch_embed(&mut rec, &upload(&pixels, &[3, s.height, s.width]), s, cols.tensor(), &w, y.tensor()).unwrap();
        rec.submit();
        assert_close("im2col", &cols.read(), &cpu::im2col(&pixels, s), Tol::new(0.0, 0.0));
        assert_close(&format!("patch_embed {dtype}"), &y.read(), &cpu::patch_embed(&pixels, s, &host), Tol::new(5e-5, 2e-5));
    }
}

/// A context opened with `ReducedPrecision` routes `ops::matmul` to the f16 GEMM and
/// `ops::matvec` on quantised weights to the integer-dot kernel (bit for bit the same as asking
/// for them), and leaves float weights' matvec alone; a default context never does.
#[test]
fn reduced_precision_contexts_pick_the_reduced_kernels() {
    use llava_lens_gpu::{ContextOptions, GpuContext, GpuTensor, ReducedPrecision, read_f32_blocking};
    let reduced = ReducedPrecision { f16_gemm: true, int8_matvec: true };
    let ctx = GpuContext::new_blocking(ContextOptions { reduced_precision: reduced, ..ContextOptions::default() }).unwrap();
    let plain = GpuContext::new_blocking(ContextOptions::default()).unwrap();
    let (m, n, k) = (9, 70, 128);
    let xs = Rng::new(40).uniform(m * k, -1.0, 1.0);
    let run = |ctx: &GpuContext, dtype: DType, rows: usize, how: &dyn Fn(&mut Recorder<'_>, &GpuTensor, &GpuMatrix, &GpuTensor)| {
        let w = GpuMatrix::upload(ctx, &weights(41, n, k, dtype), "w").unwrap();
        let x = GpuTensor::from_f32(ctx, &xs[..rows * k], &[rows, k], "x").unwrap();
        let y = GpuTensor::zeros(ctx, &[rows, n], "y");
        let mut rec = Recorder::new(ctx, "reduced");
        how(&mut rec, &x, &w, &y);
        rec.submit();
        read_f32_blocking(ctx, &y).unwrap()
    };
    if ctx.has_shader_f16() {
        let chosen = run(&ctx, DType::Q4G32, m, &|r, x, w, y| ops::matmul(r, x, w, y).unwrap());
        let f16 = run(&ctx, DType::Q4G32, m, &|r, x, w, y| ops::matmul_tiled(r, x, w, y, GemmTile::SmallF16).unwrap());
        let exact = run(&plain, DType::Q4G32, m, &|r, x, w, y| ops::matmul(r, x, w, y).unwrap());
        assert_eq!(chosen, f16, "f16_gemm: ops::matmul did not take the f16 tile");
        assert_ne!(chosen, exact, "the f16 tile gave the f32 path's bits");
    }
    let x1 = |v: &GpuTensor, ctx: &GpuContext| v.view(ctx, 0, &[k]).unwrap();
    let chosen = run(&ctx, DType::Q8G32, 1, &|r, x, w, y| ops::matvec(r, &x1(x, &ctx), w, &y.view(&ctx, 0, &[n]).unwrap()).unwrap());
    let dot4 = run(&ctx, DType::Q8G32, 1, &|r, x, w, y| {
        ops::matvec_using(r, &x1(x, &ctx), w, &y.view(&ctx, 0, &[n]).unwrap(), ops::matvec_lanes(k), MatvecKernel::Dot4).unwrap()
    });
    let exact = run(&plain, DType::Q8G32, 1, &|r, x, w, y| ops::matvec(r, &x1(x, &plain), w, &y.view(&plain, 0, &[n]).unwrap()).unwrap());
    assert_eq!(chosen, dot4, "int8_matvec: ops::matvec did not take the integer-dot kernel");
    assert_ne!(chosen, exact, "the integer-dot kernel gave the f32 path's bits");
    let float = run(&ctx, DType::F32, 1, &|r, x, w, y| ops::matvec(r, &x1(x, &ctx), w, &y.view(&ctx, 0, &[n]).unwrap()).unwrap());
    let float_plain =
        run(&plain, DType::F32, 1, &|r, x, w, y| ops::matvec(r, &x1(x, &plain), w, &y.view(&plain, 0, &[n]).unwrap()).unwrap());
    assert_eq!(float, float_plain, "float weights' matvec changed under int8_matvec");
}
