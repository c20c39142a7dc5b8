use super::{need, u32_of};
use crate::error::ensure;
use crate::kernels::Kernel;
use crate::params::ReduceParams;
use crate::recorder::Groups;
use crate::{GpuError, GpuTensor, Recorder};

/// The `k` largest values of each row of `x` (`[rows, n]`) into `values`/`indices` (`[rows, k]`),
/// best first, ties to the lower index.
pub fn top_k(rec: &mut Recorder<'_>, x: &GpuTensor, n: usize, k: usize, values: &GpuTensor, indices: &GpuTensor) -> Result<(), GpuError> {
    ensure(n > 0 && x.len().is_multiple_of(n), "top_k", || format!("x has {} elements, not rows of {n}", x.len()))?;
    ensure((1..=n).contains(&k), "top_k", || format!("k = {k} must be in 1..={n}"))?;
    let rows = x.len() / n;
    need("top_k", "values", values, rows * k)?;
    need("top_k", "indices", indices, rows * k)?;
    let params = ReduceParams { rows: u32_of("top_k", rows)?, n: u32_of("top_k", n)?, k: u32_of("top_k", k)?, ..Default::default() };
    rec.dispatch(
        Kernel::Reduce,
        "top_k",
        &[],
        &params,
        &[(1, x.binding()), (3, values.binding()), (4, indices.binding())],
        Groups::Linear(rows as u32),
    );
    Ok(())
}

/// Greedy decoding: the index of the largest value of each row (`top_k` with k = 1).
pub fn argmax(rec: &mut Recorder<'_>, x: &GpuTensor, n: usize, values: &GpuTensor, indices: &GpuTensor) -> Result<(), GpuError> {
    top_k(rec, x, n, 1, values, indices)
}

/// `out[r, j] = log_softmax(x[r])[indices[r, j]]` for `x` = `[rows, n]`, `indices` = `[rows, m]`.
pub fn log_softmax_gather(rec: &mut Recorder<'_>, x: &GpuTensor, n: usize, indices: &GpuTensor, out: &GpuTensor) -> Result<(), GpuError> {
    ensure(n > 0 && x.len().is_multiple_of(n), "log_softmax_gather", || format!("x has {} elements, not rows of {n}", x.len()))?;
    let rows = x.len() / n;
    ensure(rows > 0 && indices.len().is_multiple_of(rows), "log_softmax_gather", || format!("{} indices for {rows} rows", indices.len()))?;
    let m = indices.len() / rows;
    need("log_softmax_gather", "out", out, rows * m)?;
    let params = ReduceParams {
        rows: u32_of("log_softmax_gather", rows)?,
        n: u32_of("log_softmax_gather", n)?,
        k: u32_of("log_softmax_gather", m)?,
        ..Default::default()
    };
    rec.dispatch(
        Kernel::Reduce,
        "log_softmax_gather",
        &[],
        &params,
        &[(1, x.binding()), (2, indices.binding()), (3, out.binding())],
        Groups::Linear(rows as u32),
    );
    Ok(())
}

/// `out[r, j] = 1 + #{i : x[r, i] > x[r, indices[r, j]]}` for `x` = `[rows, n]`, `indices` =
/// `[rows, m]`, as u32: where each chosen token stands in its row (1 = top, ties share the better
/// rank, an index outside the row gives `u32::MAX`).
pub fn token_rank(rec: &mut Recorder<'_>, x: &GpuTensor, n: usize, indices: &GpuTensor, out: &GpuTensor) -> Result<(), GpuError> {
    ensure(n > 0 && x.len().is_multiple_of(n), "token_rank", || format!("x has {} elements, not rows of {n}", x.len()))?;
    let rows = x.len() / n;
    ensure(rows > 0 && indices.len().is_multiple_of(rows), "token_rank", || format!("{} indices for {rows} rows", indices.len()))?;
    let m = indices.len() / rows;
    need("token_rank", "out", out, rows * m)?;
    let params =
        ReduceParams { rows: u32_of("token_rank", rows)?, n: u32_of("token_rank", n)?, k: u32_of("token_rank", m)?, ..Default::default() };
    rec.dispatch(
        Kernel::Reduce,
        "token_rank",
        &[],
        &params,
        &[(1, x.binding()), (2, indices.binding()), (4, out.binding())],
        Groups::Linear(rows as u32),
    );
    Ok(())
}
