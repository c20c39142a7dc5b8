//! Patch geometry and ranking the page draws with (pure, tested natively).

/// The patch under a point `(x, y)` of a drawing whose patch grid (`grid` x `grid`) fills the
/// box `(x0, y0, w, h)` (the model's crop inside the visitor's picture); None outside it.
pub fn patch_at(x: f64, y: f64, (x0, y0, w, h): (f64, f64, f64, f64), grid: usize) -> Option<usize> {
    let (u, v) = ((x - x0) / w, (y - y0) / h);
    if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) || grid == 0 {
        return None;
    }
    let (col, row) = ((u * grid as f64) as usize, (v * grid as f64) as usize);
    Some(row.min(grid - 1) * grid + col.min(grid - 1))
}

/// The patch a keyboard arrow moves to from `at` (`dx`, `dy` in patches), staying on the grid.
pub fn step_patch(at: usize, (dx, dy): (i64, i64), grid: usize) -> usize {
    let g = grid.max(1) as i64;
    let (row, col) = ((at as i64 / g + dy).clamp(0, g - 1), (at as i64 % g + dx).clamp(0, g - 1));
    (row * g + col) as usize
}

/// Canvas points of a curve sampled on the uniform grid 0, 1/n, ..., 1, in the box at `(x0, y0)`
/// of `w` x `h` pixels, values from `lo` (bottom) to `hi` (top), clamped to the box.
pub fn plot_points(values: &[f32], (x0, y0, w, h): (f64, f64, f64, f64), (lo, hi): (f64, f64)) -> Vec<(f64, f64)> {
    let n = values.len().saturating_sub(1).max(1) as f64;
    let span = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let t = ((f64::from(v) - lo) / span).clamp(0.0, 1.0);
            (x0 + w * i as f64 / n, y0 + h * (1.0 - t))
        })
        .collect()
}

/// Indices of the `k` largest scores, best first (ties by index).
pub fn top_patches(scores: &[f32], k: usize) -> Vec<usize> {
    let mut o = llava_lens_explain::method::rank_desc(scores);
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

/// A heat-map cell's style: its score's colour, and text that stays readable on it (white on the
/// strongest colours).
pub fn cell_style(score: f32, limit: f32) -> String {
    let light = limit > 0.0 && score.abs() > 0.6 * limit;
    format!("background:{};color:{}", score_color(score, limit), if light { "white" } else { "black" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_fill_their_box_with_y_up() {
        let p = plot_points(&[1.0, 0.5, 0.0], (10.0, 20.0, 100.0, 50.0), (0.0, 1.0));
        assert_eq!(p, vec![(10.0, 20.0), (60.0, 45.0), (110.0, 70.0)]);
        let clamped = plot_points(&[2.0, -1.0], (0.0, 0.0, 10.0, 10.0), (0.0, 1.0));
        assert_eq!(clamped, vec![(0.0, 0.0), (10.0, 10.0)], "values outside the range stay in the box");
        assert_eq!(plot_points(&[0.3], (0.0, 0.0, 10.0, 10.0), (0.3, 0.3)).len(), 1);
    }

    #[test]
    fn points_map_to_patches_row_major() {
        let full = (0.0, 0.0, 336.0, 336.0);
        assert_eq!(patch_at(0.0, 0.0, full, 12), Some(0));
        assert_eq!(patch_at(335.9, 0.0, full, 12), Some(11));
        assert_eq!(patch_at(0.0, 28.0, full, 12), Some(12));
        assert_eq!(patch_at(335.9, 335.9, full, 12), Some(143));
        assert_eq!(patch_at(-1.0, 3.0, full, 12), None);
        assert_eq!(patch_at(3.0, 336.0, full, 12), None);
        // A centre crop of a wide picture: the margins are outside the grid.
        let crop = (100.0, 0.0, 300.0, 300.0);
        assert_eq!(patch_at(50.0, 10.0, crop, 3), None);
        assert_eq!(patch_at(100.0, 0.0, crop, 3), Some(0));
        assert_eq!(patch_at(399.0, 299.0, crop, 3), Some(8));
        assert_eq!(patch_at(410.0, 10.0, crop, 3), None);
    }

    #[test]
    fn arrows_move_the_patch_cursor_within_the_grid() {
        assert_eq!(step_patch(0, (1, 0), 3), 1);
        assert_eq!(step_patch(0, (0, 1), 3), 3);
        assert_eq!(step_patch(0, (-1, -1), 3), 0, "stays at the top-left corner");
        assert_eq!(step_patch(8, (1, 1), 3), 8, "stays at the bottom-right corner");
        assert_eq!(step_patch(2, (1, 0), 3), 2, "does not wrap to the next row");
    }

    #[test]
    fn top_patches_are_ranked_and_stable() {
        assert_eq!(top_patches(&[0.1, 0.5, 0.5, -1.0], 3), vec![1, 2, 0]);
        assert_eq!(top_patches(&[1.0], 5), vec![0]);
    }

    #[test]
    fn cell_text_stays_readable() {
        assert!(cell_style(0.9, 1.0).ends_with("color:white"), "strong red");
        assert!(cell_style(-0.9, 1.0).ends_with("color:white"), "strong blue");
        assert!(cell_style(0.2, 1.0).ends_with("color:black"), "pale");
        assert!(cell_style(0.5, 0.0).ends_with("color:black"), "no scale: neutral");
        assert!(cell_style(0.9, 1.0).starts_with(&format!("background:{}", score_color(0.9, 1.0))));
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
