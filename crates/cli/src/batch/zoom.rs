//! `batch --zoom`: the example asked again on the map's window and on random windows of the same
//! size (the zoom of `llava-lens zoom`), so `report` can say whether the map helps to look closer.

use llava_lens_explain::explanation::Explanation;
use llava_lens_explain::intervene::Targets;
use llava_lens_explain::intervene::zoom::{Zoom, ZoomInput, zoom};
use llava_lens_model::Prompt;
use llava_lens_model::preprocess::{ImageProcessor, Preprocessed};
use serde::Serialize;

use super::examples::fnv1a;
use crate::input::LoadedModel;

/// One example's zoomed answers, as its line's `zoom` field.
#[derive(Debug, Serialize)]
pub struct ZoomRow {
    /// The window's side as a share of the model's view, and in patches.
    pub fraction: f32,
    pub window_patches: usize,
    #[serde(flatten)]
    pub zoom: Zoom,
}

/// Zooms on the explained example: the explained token (and its contrast) is the target on every
/// window; the random windows are seeded by the example's id, so a rerun or another shard draws
/// the same ones.
#[allow(clippy::too_many_arguments)]
pub fn zoom_row(
    m: &LoadedModel,
    e: &Explanation,
    prompt: &Prompt,
    pre: &Preprocessed,
    original: &image::RgbImage,
    processor: &ImageProcessor,
    fraction: f32,
    seeds: usize,
    id: &str,
) -> anyhow::Result<ZoomRow> {
    let vision = m.model.config.vision_tower()?;
    let grid = vision.grid();
    let input = ZoomInput {
        prompt,
        pixels: &pre.pixels,
        original,
        processor,
        region: pre.patch_region(vision.covered_pixels()).1,
        grid,
        scores: &e.patch_scores,
    };
    // Within 2^48, so the range never wraps.
    let first = fnv1a(id.as_bytes()) >> 16;
    let targets = Targets { target: e.target.id, contrast: e.contrast.as_ref().map(|c| c.id) };
    let mut z = pollster::block_on(zoom(&m.model, &m.ctx, &input, fraction, first..first + seeds as u64, targets))?;
    z.name_tokens(&m.tokenizer);
    Ok(ZoomRow { fraction, window_patches: z.map.window.side, zoom: z })
}
