//! `eval zoom`: is the map useful for looking closer? On held-out scenes, one present-object
//! colour question per scene (as `eval faithfulness` asks it): the answer on the whole picture,
//! on the map's window (the `--zoom` share of the side holding the most positive map score,
//! cropped and asked again) and on random windows of the same size; accuracy (top-1 is the correct
//! colour) and mean p(correct) of each, and how often each window holds part of the asked object.

use clap::Args;
use llava_lens_explain::intervene::zoom::{Window, ZoomInput, zoom};
use llava_lens_explain::intervene::{Outcome, Targets};
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_model::WeightDType;
use llava_lens_model::preprocess::{ResizeMode, preprocess};
use llava_lens_scenes::patch_coverage;
use serde_json::json;

use super::{SceneSet, ask};

#[derive(Debug, Args)]
pub struct ZoomTableArgs {
    #[command(flatten)]
    pub scenes: SceneSet,
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDType,
    /// The window's side as a share of the model's view.
    #[arg(long, default_value_t = 0.5)]
    pub zoom: f32,
    /// Random windows per scene.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
}

/// Right answers, summed p(correct), windows holding the object, and how many were counted.
#[derive(Default)]
struct Tally {
    right: f64,
    p: f64,
    on_object: f64,
    n: f64,
}

impl Tally {
    fn add(&mut self, o: &Outcome, answer: u32, on_object: bool) {
        self.right += (o.top.first().map(|t| t.id) == Some(answer)) as u8 as f64;
        self.p += o.prob() as f64;
        self.on_object += on_object as u8 as f64;
        self.n += 1.0;
    }

    fn json(&self) -> serde_json::Value {
        let n = self.n.max(1.0);
        json!({"accuracy": self.right / n, "mean_p_correct": self.p / n, "window_on_object": self.on_object / n, "n": self.n})
    }
}

pub fn run(a: &ZoomTableArgs) -> anyhow::Result<()> {
    if !(a.zoom > 0.0 && a.zoom <= 1.0) {
        anyhow::bail!("--zoom {} is not a share of the picture's side in (0, 1]", a.zoom);
    }
    let super::Setup { dir, m, processor, spec } = a.scenes.setup(a.dtype, None)?;
    let vision = m.model.config.vision_tower()?;
    let grid = vision.grid();
    let side = ((a.zoom * grid as f32).round() as usize).clamp(1, grid);
    let (mut whole, mut by_map, mut random) = (Tally::default(), Tally::default(), Tally::default());
    let bar = indicatif::ProgressBar::new(a.scenes.n);
    for scene in a.scenes.scenes(&spec) {
        let q = super::one_present(&scene);
        let asked = ask(&m.tokenizer, q)?;
        let pre = preprocess(&scene.image, &processor, ResizeMode::CenterCrop)?;
        let targets = Targets { target: asked.answer, contrast: None };
        let opts = ExplainOptions { target: Some(asked.answer), lens_k: 0, ..Default::default() };
        let e = pollster::block_on(explain(&m.model, &m.ctx, &asked.prompt, &pre.pixels, &opts))?;
        let input = ZoomInput {
            prompt: &asked.prompt,
            pixels: &pre.pixels,
            original: &scene.image,
            processor: &processor,
            region: pre.patch_region(vision.covered_pixels()).1,
            grid,
            scores: &e.patch_scores,
        };
        // Random windows of their own per scene.
        let seeds = scene.index * 1000..scene.index * 1000 + a.seeds as u64;
        let z = pollster::block_on(zoom(&m.model, &m.ctx, &input, a.zoom, seeds, targets))?;
        let cover = &patch_coverage(&scene.labels, scene.objects.len() as u8, grid)[q.object.expect("a present object") as usize];
        let on = |w: Window| (w.row..w.row + w.side).any(|r| (w.col..w.col + w.side).any(|c| cover[r * grid + c] > 0.0));
        whole.add(&z.before, asked.answer, true);
        by_map.add(&z.map.outcome, asked.answer, on(z.map.window));
        for r in &z.random {
            random.add(&r.outcome, asked.answer, on(r.window));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let doc = json!({
        "model": dir, "seed": a.scenes.seed, "dtype": a.dtype.name(), "zoom": a.zoom, "window_patches": side, "grid": grid,
        "whole_picture": whole.json(), "map_window": by_map.json(), "random_window": random.json(),
    });
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
