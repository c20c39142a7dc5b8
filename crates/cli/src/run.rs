//! `llava-lens run`: load an HF Llava folder, answer a question about an image.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::preprocess::{ResizeMode, load_image, preprocess};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, RunOptions, WeightDType};
use serde_json::json;

#[derive(Debug, Args)]
pub struct RunArgs {
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
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    /// Original LLaVA's pad-to-square instead of HF's resize + center crop.
    #[arg(long)]
    pub pad_to_square: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = LlavaConfig::load(&args.model.join("config.json"))?;
    let tokenizer = LlavaTokenizer::load(&args.model.join("tokenizer.json"), config.image_token_index)?;
    let prompt = tokenizer.prompt(&args.question, &args.answer_prefix)?;
    let image = load_image(&args.image)?;
    let mode = if args.pad_to_square { ResizeMode::PadToSquare } else { ResizeMode::CenterCrop };
    let pre = preprocess(&image, config.vision.image_size, mode)?;
    let ckpt = Checkpoint::open(&args.model)?;
    let ctx = GpuContext::new_blocking(ContextOptions::default())?;

    let bar = ProgressBar::new(Llava::tensor_count(&config) as u64);
    bar.set_style(ProgressStyle::with_template("loading {bar:40} {pos}/{len} tensors {msg}").unwrap());
    let tick = |name: &str| {
        bar.inc(1);
        bar.set_message(name.to_string());
    };
    let model = Llava::load(&ctx, &ckpt, &config, args.dtype, Some(&tick)).with_context(|| format!("loading {}", args.model.display()))?;
    bar.finish_and_clear();

    let opts = RunOptions { max_new_tokens: args.max_new_tokens, eos: tokenizer.eos, ..Default::default() };
    let out = pollster::block_on(model.run(&ctx, &prompt, &pre.pixels, &opts))?;
    let answer_ids: Vec<u32> = out.tokens.iter().copied().filter(|&t| Some(t) != tokenizer.eos).collect();
    let answer = tokenizer.decode(&answer_ids)?;
    let top: Vec<_> = out.top.iter().map(|&(id, lp)| json!({"id": id, "token": tokenizer.token(id), "prob": lp.exp()})).collect();
    if args.json {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let record = json!({
            "model": args.model,
            "dtype": args.dtype.name(),
            "adapter": ctx.describe(),
            "prompt_ids": prompt.ids,
            "image_offset": prompt.image_offset,
            "sequence_length": out.prompt_len,
            "answer": answer,
            "answer_ids": out.tokens,
            "top_next_tokens": top,
            "crop": {"x": pre.crop.x, "y": pre.crop.y, "width": pre.crop.width, "height": pre.crop.height},
            "timings_ms": {"image_to_first_token": ms(out.prefill_time), "decode": ms(out.decode_time)},
            "weight_bytes": model.weight_bytes,
        });
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!(
            "{}{}",
            if args.answer_prefix.is_empty() { String::new() } else { format!("{} ", args.answer_prefix.trim()) },
            answer.trim()
        );
        for t in &top {
            eprintln!("  {:>6} {:<16} {:.4}", t["id"], t["token"].as_str().unwrap_or("?"), t["prob"].as_f64().unwrap_or(0.0));
        }
    }
    Ok(())
}
