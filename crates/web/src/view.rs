//! Patch geometry and ranking the page draws with (pure, tested natively).

/// The patch under a point of the drawn map: `(x, y)` in pixels of a `size` x `size` drawing of a
/// `grid` x `grid` patch map; None outside it.
pub fn patch_at(x: f64, y: f64, size: f64, grid: usize) -> Option<usize> {
    if !(0.0..size).contains(&x) || !(0.0..size).contains(&y) || grid == 0 {
        return None;
    }
    let col = ((x / size) * grid as f64) as usize;
    let row = ((y / size) * grid as f64) as usize;
    Some(row.min(grid - 1) * grid + col.min(grid - 1))
}

/// Indices of the `k` largest scores, best first (ties by index).
pub fn top_patches(scores: &[f32], k: usize) -> Vec<usize> {
    let mut o: Vec<usize> = (0..scores.len()).collect();
    o.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    o.truncate(k);
    o
}

/// CSS colour of a head's score on a diverging scale symmetric around 0 (red positive, blue
/// negative), `limit` the largest magnitude shown at full strength.
pub fn score_color(score: f32, limit: f32) -> String {
    let t = if limit > 0.0 { (score / limit).clamp(-1.0, 1.0) } else { 0.0 };
    // RdBu runs red (0) to blue (1), the same scale as the rendered maps.
    let c = colorous::RED_BLUE.eval_continuous(0.5 - 0.5 * t as f64).as_array();
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_map_to_patches_row_major() {
        assert_eq!(patch_at(0.0, 0.0, 336.0, 12), Some(0));
        assert_eq!(patch_at(335.9, 0.0, 336.0, 12), Some(11));
        assert_eq!(patch_at(0.0, 28.0, 336.0, 12), Some(12));
        assert_eq!(patch_at(335.9, 335.9, 336.0, 12), Some(143));
        assert_eq!(patch_at(-1.0, 3.0, 336.0, 12), None);
        assert_eq!(patch_at(3.0, 336.0, 336.0, 12), None);
    }

    #[test]
    fn top_patches_are_ranked_and_stable() {
        assert_eq!(top_patches(&[0.1, 0.5, 0.5, -1.0], 3), vec![1, 2, 0]);
        assert_eq!(top_patches(&[1.0], 5), vec![0]);
    }

    #[test]
    fn score_colors_diverge_around_zero() {
        let zero = score_color(0.0, 1.0);
        let pos = score_color(1.0, 1.0);
        let neg = score_color(-1.0, 1.0);
        assert_ne!(pos, neg);
        assert_ne!(pos, zero);
        assert_eq!(score_color(5.0, 1.0), pos, "clamped");
    }
}
