use std::cmp::Ordering;

/// Order used by top-k on the GPU and here: larger value first, lower index first among equals.
fn before(a: (f32, usize), b: (f32, usize)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// `torch.topk(x, k)` per row of `x` (`[rows, n]`): indices and values, best first.
pub fn top_k(x: &[f32], n: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    for row in x.chunks_exact(n) {
        let mut order: Vec<(f32, usize)> = row.iter().copied().zip(0..).collect();
        order.sort_by(|a, b| before(*a, *b));
        for &(v, i) in order.iter().take(k) {
            idx.push(i as u32);
            val.push(v);
        }
    }
    (idx, val)
}

/// Index of the largest value of each row (lowest index among ties), i.e. greedy decoding.
pub fn argmax(x: &[f32], n: usize) -> Vec<u32> {
    top_k(x, n, 1).0
}

/// `log_softmax(x[r])[idx[r, j]]` for every row `r` (`x` is `[rows, n]`, `idx` is `[rows, m]`),
/// the quantity every importance score of the method reads. Log-sum-exp in f64.
pub fn log_softmax_gather(x: &[f32], n: usize, idx: &[u32], m: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len());
    for (row, ids) in x.chunks_exact(n).zip(idx.chunks_exact(m)) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        out.extend(ids.iter().map(|&i| (row[i as usize] as f64 - lse) as f32));
    }
    out
}

/// Where each of a row's `m` chosen tokens stands: `1 + #{i : row[i] > row[idx]}` (1 = top; equal
/// values share the better rank; an index outside the row gives `u32::MAX`).
pub fn token_rank(x: &[f32], n: usize, idx: &[u32], m: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(idx.len());
    for (row, ids) in x.chunks_exact(n).zip(idx.chunks_exact(m)) {
        out.extend(ids.iter().map(|&i| match row.get(i as usize) {
            Some(&v) => 1 + row.iter().filter(|&&o| o > v).count() as u32,
            None => u32::MAX,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_index() {
        let (i, v) = top_k(&[1.0, 3.0, 3.0, -1.0, 0.0, 0.0, 0.0, 5.0], 4, 3);
        assert_eq!(i, vec![1, 2, 0, 3, 0, 1]);
        assert_eq!(v, vec![3.0, 3.0, 1.0, 5.0, 0.0, 0.0]);
        assert_eq!(argmax(&[0.0, 2.0, 2.0], 3), vec![1]);
    }

    #[test]
    fn token_rank_counts_larger_values_and_shares_ties() {
        let row = [0.5, 2.0, 2.0, -1.0];
        assert_eq!(token_rank(&row, 4, &[1, 2, 0, 3, 9], 5), vec![1, 1, 3, 4, u32::MAX]);
    }

    #[test]
    fn log_softmax_of_uniform_row_is_minus_log_n() {
        let out = log_softmax_gather(&[7.0; 8], 4, &[0, 3], 1);
        assert!(out.iter().all(|v| (v + 4f32.ln()).abs() < 1e-6));
    }
}
