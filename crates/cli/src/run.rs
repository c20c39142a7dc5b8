//! `llava-lens run`: load an HF Llava folder, answer a question about an image (or a text
//! context).

use clap::Args;
use llava_lens_model::RunOptions;

use crate::input::{Loaded, ModelInput};
use serde_json::json;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: ModelInput,
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let Loaded { dir, tokenizer, prompt, image: pre, ctx, model, .. } = args.input.load(args.max_new_tokens)?;
    let opts = RunOptions { max_new_tokens: args.max_new_tokens, eos: tokenizer.eos, ..Default::default() };
    let pixels = pre.as_ref().map_or(&[][..], |p| &p.pixels[..]);
    let out = pollster::block_on(model.run(&ctx, &prompt, pixels, &opts))?;
    let answer_ids: Vec<u32> = out.tokens.iter().copied().filter(|&t| Some(t) != tokenizer.eos).collect();
    let answer = tokenizer.decode(&answer_ids)?;
    let top: Vec<_> = out.top.iter().map(|&(id, lp)| json!({"id": id, "token": tokenizer.token(id), "prob": lp.exp()})).collect();
    if args.json {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let record = json!({
            "model": dir,
            "dtype": args.input.dtype.name(),
            "adapter": ctx.describe(),
            "prompt_ids": prompt.ids,
            "image_offset": prompt.image_offset,
            "sequence_length": out.prompt_len,
            "answer": answer,
            "answer_ids": out.tokens,
            "top_next_tokens": top,
            "crop": pre.as_ref().map(|p| json!({"x": p.crop.x, "y": p.crop.y, "width": p.crop.width, "height": p.crop.height})),
            "timings_ms": {"image_to_first_token": ms(out.prefill_time), "decode": ms(out.decode_time)},
            "weight_bytes": model.weight_bytes,
        });
        crate::print_out(serde_json::to_string_pretty(&record)?)?;
    } else {
        let prefix = if args.input.answer_prefix.is_empty() { String::new() } else { format!("{} ", args.input.answer_prefix.trim()) };
        crate::print_out(format!("{prefix}{}", answer.trim()))?;
        for t in &top {
            eprintln!("  {:>6} {:<16} {:.4}", t["id"], t["token"].as_str().unwrap_or("?"), t["prob"].as_f64().unwrap_or(0.0));
        }
    }
    Ok(())
}
