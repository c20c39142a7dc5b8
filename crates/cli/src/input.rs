//! What `run` and `explain` share: the model folder, image, question and how to load them.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::preprocess::{Preprocessed, ResizeMode, load_image, preprocess};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, Prompt, WeightDType};

#[derive(Debug, Args)]
pub struct ModelInput {
    /// HF model folder: config.json, model.safetensors (or shards + index), tokenizer.json.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub image: PathBuf,
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

/// Everything loaded: checked inputs first (cheap errors before the GPU work), then the model
/// with a progress bar.
pub struct Loaded {
    pub tokenizer: LlavaTokenizer,
    pub prompt: Prompt,
    pub image: Preprocessed,
    /// The image as the user gave it (maps are also drawn back onto it).
    pub original: image::RgbImage,
    pub ctx: GpuContext,
    pub model: Llava,
}

impl ModelInput {
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let config = LlavaConfig::load(&self.model.join("config.json"))?;
        let tokenizer = LlavaTokenizer::load(&self.model.join("tokenizer.json"), config.image_token_index)?;
        let prompt = tokenizer.prompt(&self.question, &self.answer_prefix)?;
        let mode = if self.pad_to_square { ResizeMode::PadToSquare } else { ResizeMode::CenterCrop };
        let original = load_image(&self.image)?;
        let image = preprocess(&original, config.vision.image_size, mode)?;
        let ckpt = Checkpoint::open(&self.model)?;
        let ctx = GpuContext::new_blocking(ContextOptions::default())?;
        let bar = ProgressBar::new(Llava::tensor_count(&config) as u64);
        bar.set_style(ProgressStyle::with_template("loading {bar:40} {pos}/{len} tensors {msg}").unwrap());
        let tick = |name: &str| {
            bar.inc(1);
            bar.set_message(name.to_string());
        };
        let model =
            Llava::load(&ctx, &ckpt, &config, self.dtype, Some(&tick)).with_context(|| format!("loading {}", self.model.display()))?;
        bar.finish_and_clear();
        Ok(Loaded { tokenizer, prompt, image, original, ctx, model })
    }
}
