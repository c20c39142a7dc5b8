//! Shared harness of the GPU tests: one device per test binary, seeded inputs, explicit
//! tolerances with precise failure messages, and guarded output buffers whose surroundings must
//! stay untouched.
//!
//! There is no skip: without an adapter every GPU test fails with the reason (CI installs Mesa's
//! lavapipe so that one always exists).

pub mod golden;

use std::sync::OnceLock;

use llava_lens_gpu::{ContextOptions, GpuContext, GpuTensor, read_f32_blocking, read_u32_blocking};

/// The device every test of this binary shares (creating one per test costs seconds on lavapipe).
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new_blocking(ContextOptions::default()) {
        Ok(ctx) => {
            eprintln!("GPU tests on: {}", ctx.describe());
            ctx
        }
        Err(e) => panic!("GPU tests need an adapter and never skip: {e}"),
    })
}

/// `|got - want| <= abs + rel * |want|`, element by element.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    pub abs: f32,
    pub rel: f32,
}

impl Tol {
    pub const fn new(abs: f32, rel: f32) -> Self {
        Tol { abs, rel }
    }
}

/// Compares element by element; NaN or infinity in `got` fails on its own, whatever `want` is.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: Tol) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        panic!("{what}: non-finite value {} at index {i} (expected {})", got[i], want[i]);
    }
    // The element furthest past its bound, and how many are past it.
    let excess = |i: usize| (got[i] - want[i]).abs() - (tol.abs + tol.rel * want[i].abs());
    let failures = (0..got.len()).filter(|&i| excess(i) > 0.0).count();
    if failures > 0 {
        let i = (0..got.len()).max_by(|&a, &b| excess(a).total_cmp(&excess(b))).unwrap();
        panic!(
            "{what}: {failures}/{} values outside abs {} + rel {}; worst at index {i}: got {}, expected {}, error {}",
            got.len(),
            tol.abs,
            tol.rel,
            got[i],
            want[i],
            (got[i] - want[i]).abs()
        );
    }
}

/// Normalised mean squared error `sum (got - want)^2 / sum want^2`.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    num / den.max(f64::MIN_POSITIVE)
}

/// Elements of sentinel before and after a guarded output: 256 bytes, the storage offset
/// alignment, so the output itself can be bound at an offset.
pub const GUARD: usize = 64;
/// A NaN with a recognisable payload: an unwritten output element also fails the NaN check.
pub const SENTINEL: u32 = 0x7fa5_a5a5;

/// An output tensor surrounded by sentinel-filled guard regions that a kernel must not touch.
///
/// For pure outputs the view handed to the kernel extends over the trailing guard, so a write
/// past the end lands inside the binding (where wgpu's bounds checks cannot discard it) and shows
/// up as a changed guard word. In-place tensors get an exact view (their length is their size).
#[derive(Debug)]
pub struct Guarded {
    whole: GpuTensor,
    inner: GpuTensor,
    n: usize,
    what: String,
}

impl Guarded {
    /// Output of `shape` elements, prefilled with the sentinel; its view runs over the tail guard.
    pub fn new(what: &str, shape: &[usize]) -> Guarded {
        let n: usize = shape.iter().product();
        Self::with_u32(what, &vec![SENTINEL; n], &[n + GUARD])
    }

    /// Output of `shape` holding `data` first (for in-place kernels), viewed exactly.
    pub fn with_f32(what: &str, data: &[f32], shape: &[usize]) -> Guarded {
        Self::with_u32(what, bytemuck::cast_slice(data), shape)
    }

    fn with_u32(what: &str, data: &[u32], view_shape: &[usize]) -> Guarded {
        let mut words = vec![SENTINEL; GUARD];
        words.extend_from_slice(data);
        words.extend(std::iter::repeat_n(SENTINEL, GUARD));
        let whole = GpuTensor::from_u32(ctx(), &words, &[words.len()], what).unwrap();
        let inner = whole.view(ctx(), GUARD, view_shape).unwrap();
        Guarded { whole, inner, n: data.len(), what: what.to_string() }
    }

    pub fn tensor(&self) -> &GpuTensor {
        &self.inner
    }

    fn read_words(&self) -> Vec<u32> {
        let all = read_u32_blocking(ctx(), &self.whole).unwrap();
        let n = self.n;
        for (i, &w) in all[..GUARD].iter().chain(&all[GUARD + n..]).enumerate() {
            let at = if i < GUARD { format!("{} before", GUARD - i) } else { format!("{} after", i - GUARD + 1) };
            assert_eq!(w, SENTINEL, "{}: guard word {at} the output was overwritten with {w:#x}", self.what);
        }
        all[GUARD..GUARD + n].to_vec()
    }

    /// The output as f32, after checking both guard regions.
    pub fn read(&self) -> Vec<f32> {
        bytemuck::cast_slice(&self.read_words()).to_vec()
    }

    /// The output as u32, after checking both guard regions.
    pub fn read_u32(&self) -> Vec<u32> {
        self.read_words()
    }
}

/// Uploads f32 data as a device tensor.
pub fn upload(data: &[f32], shape: &[usize]) -> GpuTensor {
    GpuTensor::from_f32(ctx(), data, shape, "input").unwrap()
}

/// Reads a whole device tensor back.
pub fn download(t: &GpuTensor) -> Vec<f32> {
    read_f32_blocking(ctx(), t).unwrap()
}
