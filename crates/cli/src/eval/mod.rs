//! `llava-lens eval`: held-out measurements on generated scenes (a seed never used in training):
//! answer accuracy, the pointing game, and the faithfulness table.

mod ablation;
mod accuracy;
mod faithfulness;
mod pointing;
mod zoom;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, preprocess};
use llava_lens_model::{LlavaConfig, LlavaTokenizer, Prompt, WeightDType};

use crate::input::{LoadedModel, load_model, load_text_side, model_dir};
use llava_lens_scenes::{Question, Scene, SceneSpec, generate};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Answer accuracy on the colour questions of held-out scenes, per weight dtype (JSON).
    Accuracy(accuracy::AccuracyArgs),
    /// Pointing game: does the top patch of each map fall on the object the question is about?
    Pointing(pointing::PointingArgs),
    /// Deletion/insertion AUCs of the map, mean attention and random orders over many scenes.
    Faithfulness(faithfulness::FaithfulnessTableArgs),
    /// p(correct colour) with the paper's top head ablated vs a random other head, and the
    /// head-level deletion curve's AUC for the paper's order vs random orders.
    Ablation(ablation::AblationTableArgs),
    /// Accuracy on the map's window cropped and asked again, against random windows.
    Zoom(zoom::ZoomTableArgs),
}

pub fn run(cmd: &EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Accuracy(a) => accuracy::run(a),
        EvalCommand::Pointing(a) => pointing::run(a),
        EvalCommand::Faithfulness(a) => faithfulness::run(a),
        EvalCommand::Ablation(a) => ablation::run(a),
        EvalCommand::Zoom(a) => zoom::run(a),
    }
}

/// Which held-out scenes: `n` scenes of `seed`, at the model's input size.
#[derive(Debug, Args)]
pub struct SceneSet {
    /// HF model folder (default: the bundled demo model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of scenes.
    #[arg(long, default_value_t = 200)]
    pub n: u64,
    /// Scene seed; the demo model was trained on seed 1 and watched seed 7 (docs/DEMO-MODEL.md).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    #[arg(long, default_value_t = 1)]
    pub min_objects: usize,
    #[arg(long, default_value_t = 4)]
    pub max_objects: usize,
    /// Object sizes as MIN,MAX fractions of the image side (the shape's radius); the demo
    /// model was trained on 0.065,0.095 (11-16 px at 168 px): larger objects measure what it
    /// does outside that range.
    #[arg(long, value_parser = parse_range, default_value = "0.065,0.095")]
    pub object_size: (f32, f32),
    /// Objects rotated uniformly within +-this many degrees (trained on 0: upright).
    #[arg(long, default_value_t = 0.0)]
    pub max_rotation: f32,
}

/// `MIN,MAX`.
fn parse_range(s: &str) -> Result<(f32, f32), String> {
    let bad = || format!("{s:?} is not MIN,MAX (e.g. 0.065,0.095)");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    Ok((a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?))
}

impl SceneSet {
    pub fn spec(&self, config: &LlavaConfig) -> anyhow::Result<SceneSpec> {
        let spec = SceneSpec {
            size: config.vision_tower()?.image_size,
            min_objects: self.min_objects,
            max_objects: self.max_objects,
            min_radius: self.object_size.0,
            max_radius: self.object_size.1,
            max_rotation_deg: self.max_rotation,
            ..SceneSpec::default()
        };
        match spec.problem() {
            Some(p) => anyhow::bail!("--min-objects/--max-objects/--object-size/--max-rotation: {p}"),
            None => Ok(spec),
        }
    }

    pub fn scenes<'a>(&'a self, spec: &'a SceneSpec) -> impl Iterator<Item = Scene> + 'a {
        (0..self.n).map(move |i| generate(self.seed, i, spec))
    }

    /// What a held-out evaluation starts from: `out` (a file it will write, named by `flag`)
    /// checked first, then the model with its processor and the scene spec at its size.
    pub fn setup(&self, dtype: WeightDType, out: Option<(&Path, &str)>) -> anyhow::Result<Setup> {
        if let Some((p, flag)) = out {
            crate::output::check_writable(p, crate::output::Kind::Text, flag)?;
        }
        let dir = model_dir(self.model.as_deref())?;
        let (config, tok) = load_text_side(&dir)?;
        let processor = ImageProcessor::load(&dir, &config)?;
        let spec = self.spec(&config)?;
        let m = load_model(&dir, config, tok, dtype)?;
        Ok(Setup { dir, m, processor, spec })
    }
}

/// A loaded evaluation: the model folder, the model, its image processor, the scene spec.
pub struct Setup {
    pub dir: PathBuf,
    pub m: LoadedModel,
    pub processor: ImageProcessor,
    pub spec: SceneSpec,
}

/// The scene's present-object question that `eval faithfulness` and `eval ablation` ask (one per
/// scene, chosen by the scene's index).
pub fn one_present(scene: &Scene) -> &Question {
    let present: Vec<&Question> = scene.questions.iter().filter(|q| q.object.is_some()).collect();
    present[scene.index as usize % present.len()]
}

/// A question made ready for the model: prompt, pixels and the answer's token.
pub struct Asked {
    pub prompt: Prompt,
    pub answer: u32,
}

pub fn ask(tok: &LlavaTokenizer, q: &Question) -> anyhow::Result<Asked> {
    let prompt = tok.prompt(&q.question, &q.answer_prefix)?;
    let answer = tok
        .token_id(&format!("▁{}", q.answer))
        .ok_or_else(|| anyhow::anyhow!("the model's tokenizer has no single token for the answer {:?} (\"▁{}\")", q.answer, q.answer))?;
    Ok(Asked { prompt, answer })
}

/// The scene image through the model's own preprocessing (scenes are already at its size).
pub fn pixels(scene: &Scene, processor: &ImageProcessor) -> anyhow::Result<Vec<f32>> {
    Ok(preprocess(&scene.image, processor, ResizeMode::CenterCrop)?.pixels)
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}
