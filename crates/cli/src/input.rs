//! What `run`, `explain`, `faithfulness` and `eval` share: finding the model folder (the bundled
//! demo model by default), loading it with a progress bar, and loading an image and question.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::preprocess::{ImageProcessor, Preprocessed, ResizeMode, load_image, preprocess};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, Prompt, PromptParts, WeightDType};

/// The demo model's folder inside the repository (docs/DEMO-MODEL.md).
pub const DEMO_MODEL: &str = "models/scenes-tiny";

#[derive(Debug, Args)]
pub struct ModelInput {
    /// HF model folder: config.json, model.safetensors (or shards + index), tokenizer.json.
    /// Default: $LLAVA_LENS_MODEL, else the bundled demo model (models/scenes-tiny).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The image the question is about (leave it out, with --context, for a text-only question).
    #[arg(long, required_unless_present = "context")]
    pub image: Option<PathBuf>,
    /// Text the question is about, put before it (the paper's text-context condition): with
    /// --image beside the image, without it the language model answers from the text alone.
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long)]
    pub question: String,
    /// Text the answer starts with (the authors use "The color of the dog is").
    #[arg(long, default_value = "")]
    pub answer_prefix: String,
    /// Weights on the GPU: f32 (the paper's fidelity), f16, q8, q4.
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDType,
    /// Original LLaVA's pad-to-square instead of HF's resize + center crop.
    #[arg(long)]
    pub pad_to_square: bool,
}

/// `--model`, else `$LLAVA_LENS_MODEL`, else the demo model: in the working directory's
/// repository checkout, or in the checkout this binary was built from.
pub fn model_dir(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(m) = model {
        return Ok(m.to_path_buf());
    }
    if let Some(m) = std::env::var_os("LLAVA_LENS_MODEL") {
        return Ok(PathBuf::from(m));
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DEMO_MODEL);
    let candidates = [PathBuf::from(DEMO_MODEL), built_from];
    candidates.iter().find(|p| p.join("config.json").is_file()).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "no --model given and the bundled demo model was not found (looked in {} and {}); pass --model DIR or set LLAVA_LENS_MODEL",
            candidates[0].display(),
            candidates[1].display()
        )
    })
}

/// A model on the GPU with its tokenizer.
pub struct LoadedModel {
    pub config: LlavaConfig,
    pub tokenizer: LlavaTokenizer,
    pub ctx: GpuContext,
    pub model: Llava,
}

/// Config and tokenizer of `dir` (cheap; errors name the file).
pub fn load_text_side(dir: &Path) -> anyhow::Result<(LlavaConfig, LlavaTokenizer)> {
    let config = LlavaConfig::load(&dir.join("config.json"))?;
    let tokenizer = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index)?;
    Ok((config, tokenizer))
}

/// Weights of `dir` onto a new GPU context, with a progress bar.
pub fn load_model(dir: &Path, config: LlavaConfig, tokenizer: LlavaTokenizer, dtype: WeightDType) -> anyhow::Result<LoadedModel> {
    let ckpt = Checkpoint::open(dir)?;
    let ctx = GpuContext::new_blocking(ContextOptions::default())?;
    let bar = ProgressBar::new(Llava::tensor_count(&config) as u64);
    bar.set_style(ProgressStyle::with_template("loading {bar:40} {pos}/{len} tensors {msg}").unwrap());
    let tick = |name: &str| {
        bar.inc(1);
        bar.set_message(name.to_string());
    };
    let model =
        pollster::block_on(Llava::load(&ctx, &ckpt, &config, dtype, Some(&tick))).with_context(|| format!("loading {}", dir.display()))?;
    bar.finish_and_clear();
    Ok(LoadedModel { config, tokenizer, ctx, model })
}

/// Everything loaded: checked inputs first (cheap errors before the GPU work), then the model
/// with a progress bar.
pub struct Loaded {
    pub dir: PathBuf,
    pub tokenizer: LlavaTokenizer,
    pub prompt: Prompt,
    /// The image as the model sees it, and as the user gave it (maps are also drawn back onto
    /// it); None for a text-only question.
    pub image: Option<Preprocessed>,
    pub original: Option<image::RgbImage>,
    pub ctx: GpuContext,
    pub model: Llava,
}

impl ModelInput {
    /// Loads everything for a run that generates up to `new_tokens` after the prompt: the prompt
    /// must fit the model's positions with them, which is checked before any weight is read.
    pub fn load(&self, new_tokens: usize) -> anyhow::Result<Loaded> {
        let dir = model_dir(self.model.as_deref())?;
        let (config, tokenizer) = load_text_side(&dir)?;
        let parts = PromptParts { image: self.image.is_some(), context: self.context.as_deref().unwrap_or("") };
        let prompt = tokenizer.prompt_with(parts, &self.question, &self.answer_prefix)?;
        config.check_prompt(&prompt, new_tokens).map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("config.json").display()))?;
        let mode = if self.pad_to_square { ResizeMode::PadToSquare } else { ResizeMode::CenterCrop };
        let (image, original) = match &self.image {
            Some(path) => {
                let original = load_image(path)?;
                (Some(preprocess(&original, &ImageProcessor::load(&dir, &config)?, mode)?), Some(original))
            }
            None => (None, None),
        };
        let m = load_model(&dir, config, tokenizer, self.dtype)?;
        Ok(Loaded { dir, tokenizer: m.tokenizer, prompt, image, original, ctx: m.ctx, model: m.model })
    }
}
