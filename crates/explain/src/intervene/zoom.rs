//! Zoom and re-ask: crop the picture to the window the map points at, ask again, and compare with
//! the same-sized window placed at random (is the map useful for looking closer?).
//!
//! A window is `side x side` patches of the model's view. The map's window is the one whose
//! patches hold the most positive score (the sum of the map's positive values); the crop is that
//! window's box in the original picture, preprocessed as any picture is.

use llava_lens_gpu::GpuContext;
use llava_lens_model::preprocess::{CropBox, ImageProcessor, ResizeMode, preprocess};
use llava_lens_model::{Llava, Prompt};
use llava_lens_tensor::Rng;
use serde::{Deserialize, Serialize};

use super::{Intervener, Outcome, Targets};
use crate::ExplainError;

/// A window of the patch grid: its top-left patch (row, column) and its side in patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub row: usize,
    pub col: usize,
    pub side: usize,
}

/// The window of `side` patches holding the most positive map score (the first on ties, row by
/// row).
pub fn map_window(scores: &[f32], grid: usize, side: usize) -> Window {
    let side = side.clamp(1, grid.max(1));
    let mut best = (f32::NEG_INFINITY, Window { row: 0, col: 0, side });
    for row in 0..=grid - side {
        for col in 0..=grid - side {
            let sum: f32 = (row..row + side).flat_map(|r| (col..col + side).map(move |c| r * grid + c)).map(|p| scores[p].max(0.0)).sum();
            if sum > best.0 {
                best = (sum, Window { row, col, side });
            }
        }
    }
    best.1
}

/// A window of `side` patches at a seeded random position.
pub fn random_window(grid: usize, side: usize, seed: u64) -> Window {
    let side = side.clamp(1, grid.max(1));
    let mut rng = Rng::new(seed);
    let span = (grid - side + 1) as u64;
    Window { row: rng.below(span) as usize, col: rng.below(span) as usize, side }
}

/// The window's box in the original picture's pixels, given the box the whole grid covers there.
pub fn window_box(w: Window, grid: usize, region: CropBox) -> CropBox {
    let (cw, ch) = (region.width / grid as f32, region.height / grid as f32);
    CropBox { x: region.x + w.col as f32 * cw, y: region.y + w.row as f32 * ch, width: w.side as f32 * cw, height: w.side as f32 * ch }
}

/// One zoomed question: the window, its box and the answer there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zoomed {
    pub window: Window,
    pub crop: CropBox,
    pub outcome: Outcome,
}

/// The part `crop` (original pixels) of `original`, at least one pixel, inside the picture.
pub fn crop_part(original: &image::RgbImage, crop: CropBox) -> image::RgbImage {
    let (w, h) = original.dimensions();
    let x0 = (crop.x.max(0.0).floor() as u32).min(w - 1);
    let y0 = (crop.y.max(0.0).floor() as u32).min(h - 1);
    let x1 = ((crop.x + crop.width).ceil() as u32).clamp(x0 + 1, w);
    let y1 = ((crop.y + crop.height).ceil() as u32).clamp(y0 + 1, h);
    image::imageops::crop_imm(original, x0, y0, x1 - x0, y1 - y0).to_image()
}

/// The prompt asked again about the part `crop` (original pixels) of `original`.
#[allow(clippy::too_many_arguments)]
pub async fn ask_cropped(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    original: &image::RgbImage,
    processor: &ImageProcessor,
    crop: CropBox,
    targets: Targets,
) -> Result<Outcome, ExplainError> {
    let pre = preprocess(&crop_part(original, crop), processor, ResizeMode::CenterCrop)?;
    let mut iv = Intervener::new(model, ctx, prompt, &pre.pixels).await?;
    iv.base_outcome(targets).await
}

/// What [`zoom`] found: the answer on the whole picture, on the map's window and on random ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zoom {
    pub before: Outcome,
    pub map: Zoomed,
    pub random: Vec<Zoomed>,
}

impl Zoom {
    /// Fills every outcome's token texts.
    pub fn name_tokens(&mut self, tok: &llava_lens_model::LlavaTokenizer) {
        for o in std::iter::once(&mut self.before)
            .chain(std::iter::once(&mut self.map.outcome))
            .chain(self.random.iter_mut().map(|r| &mut r.outcome))
        {
            o.name_tokens(tok);
        }
    }

    /// Mean p(target) over the random windows.
    pub fn random_mean_prob(&self) -> f32 {
        self.random.iter().map(|z| z.outcome.prob()).sum::<f32>() / self.random.len().max(1) as f32
    }
}

/// What zooming needs of one explained input.
#[derive(Debug)]
pub struct ZoomInput<'a> {
    pub prompt: &'a Prompt,
    /// The model's input for the whole picture, and the picture as given.
    pub pixels: &'a [f32],
    pub original: &'a image::RgbImage,
    pub processor: &'a ImageProcessor,
    /// The box the patch grid covers in the original picture, the grid, and the map over it.
    pub region: CropBox,
    pub grid: usize,
    pub scores: &'a [f32],
}

/// Asks again on the map's window of `zoom` of the side and on random windows of that size (one
/// per seed), beside the whole picture.
pub async fn zoom(
    model: &Llava,
    ctx: &GpuContext,
    input: &ZoomInput<'_>,
    zoom: f32,
    seeds: std::ops::Range<u64>,
    targets: Targets,
) -> Result<Zoom, ExplainError> {
    if !(zoom > 0.0 && zoom <= 1.0) {
        return Err(ExplainError::Input(format!("zoom {zoom} is not a share of the picture's side in (0, 1]")));
    }
    let grid = input.grid.max(1);
    if input.scores.len() != grid * grid {
        return Err(ExplainError::Input(format!("the map has {} patches; a {grid} x {grid} grid has {}", input.scores.len(), grid * grid)));
    }
    let side = ((zoom * grid as f32).round() as usize).clamp(1, grid);
    let before = Intervener::new(model, ctx, input.prompt, input.pixels).await?.base_outcome(targets).await?;
    let ask = async |window: Window| -> Result<Zoomed, ExplainError> {
        let crop = window_box(window, grid, input.region);
        let outcome = ask_cropped(model, ctx, input.prompt, input.original, input.processor, crop, targets).await?;
        Ok(Zoomed { window, crop, outcome })
    };
    let map = ask(map_window(input.scores, grid, side)).await?;
    let mut random = Vec::with_capacity(seeds.end.saturating_sub(seeds.start) as usize);
    for seed in seeds {
        random.push(ask(random_window(grid, side, seed)).await?);
    }
    Ok(Zoom { before, map, random })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_window_holds_the_most_positive_score() {
        let mut s = vec![0.0f32; 16];
        s[10] = 2.0; // row 2, column 2
        s[11] = 1.0;
        s[0] = -5.0; // negative scores do not count for or against
        assert_eq!(map_window(&s, 4, 2), Window { row: 1, col: 2, side: 2 }, "the first window holding both, row by row");
        assert_eq!(map_window(&s, 4, 1), Window { row: 2, col: 2, side: 1 });
        assert_eq!(map_window(&s, 4, 9), Window { row: 0, col: 0, side: 4 }, "a side past the grid is the whole grid");
        let r = random_window(4, 3, 7);
        assert!(r.row <= 1 && r.col <= 1 && r.side == 3);
        let b = window_box(Window { row: 1, col: 2, side: 2 }, 4, CropBox { x: 10.0, y: 0.0, width: 40.0, height: 80.0 });
        assert_eq!(b, CropBox { x: 30.0, y: 20.0, width: 20.0, height: 40.0 });
    }
}
