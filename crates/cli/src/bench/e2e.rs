//! `llava-lens bench e2e`: the whole Llava pipeline with random weights built in memory (no
//! file needed): image-to-first-token time, prefill and decode tokens/s, peak GPU memory.

use anyhow::Context;
use clap::Args;
use llava_lens_gpu::{ContextOptions, GpuContext, ReducedPrecision};
use llava_lens_model::{Llava, LlavaConfig, Prompt, RandomWeights, RunOptions, WeightDType, tiny};
use llava_lens_tensor::Rng;
use serde_json::json;

/// The GPU memory the 7B model at q4 must fit in (README: `--dtype q4` fits in 6 GB).
const BUDGET_7B_Q4: u64 = 6 << 30;

#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Model shape: the tiny test model, or a real checkpoint's (llava-1.5-7b, llava-1.5-13b,
    /// bakllava-v1: crates/model/src/presets.rs).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    #[arg(long, default_value = "q4")]
    pub dtype: WeightDType,
    /// Tokens generated after the prompt (no early stop).
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Also write the preset's config.json, the prompt's ids and the pixel values into this
    /// folder, for scripts/torch_explain.py to explain the same input (the side by side).
    #[arg(long)]
    pub write_inputs: Option<std::path::PathBuf>,
    /// Open the device without shader-f16 and subgroups, so every op runs the kernels any WebGPU
    /// adapter runs (the subgroup matvec off): the same pipeline both ways, side by side.
    #[arg(long)]
    pub core_features: bool,
    /// Prefill GEMMs in f16 arithmetic (where the device has shader-f16) and decode matvecs of
    /// Q8/Q4 weights on 8-bit activations: the reduced-precision kernels, end to end.
    #[arg(long)]
    pub reduced_precision: bool,
}

/// The preset's config.json text.
fn preset_json(name: &str) -> anyhow::Result<String> {
    Ok(match name {
        "tiny" => tiny::tiny_config(true).to_string(),
        other => llava_lens_model::presets::preset(other).map_err(|e| anyhow::anyhow!("{e} (or tiny)"))?.config_json().to_string(),
    })
}

fn preset(name: &str) -> anyhow::Result<LlavaConfig> {
    Ok(LlavaConfig::parse(&preset_json(name)?, std::path::Path::new(name))?)
}

/// The inputs `bench e2e` explains, for another implementation to explain too.
fn write_inputs(dir: &std::path::Path, preset: &str, prompt: &Prompt, pixels: &[f32]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))
    };
    write("config.json", preset_json(preset)?.as_bytes())?;
    write("prompt.json", json!({"ids": prompt.ids, "image_offset": prompt.image_offset}).to_string().as_bytes())?;
    write("pixel_values.f32", bytemuck::cast_slice(pixels))
}

pub fn run(args: &E2eArgs) -> anyhow::Result<()> {
    let config = preset(&args.preset)?;
    let reduced_precision = ReducedPrecision { f16_gemm: args.reduced_precision, int8_matvec: args.reduced_precision };
    let ctx = GpuContext::new_blocking(ContextOptions {
        core_features_only: args.core_features,
        reduced_precision,
        ..ContextOptions::default()
    })?;
    eprintln!("e2e {} {} on {}", args.preset, args.dtype.name(), ctx.describe());
    let t = std::time::Instant::now();
    let model = pollster::block_on(Llava::load(&ctx, &RandomWeights { seed: 7 }, &config, args.dtype, None))?;
    let load_s = t.elapsed().as_secs_f64();
    // The paper's prompt shape: 5 tokens, the image, 21 tokens.
    let vocab = config.text.vocab_size as u32;
    let image_token = config.image_token_index.context("bench e2e explains an image: the config has no vision tower")?;
    let mut ids: Vec<u32> = (0..27).map(|i| 3 + (i * 7919) % (vocab - 3)).filter(|&id| id != image_token).take(26).collect();
    ids.insert(5, image_token);
    let prompt = Prompt { ids, image_offset: Some(5) };
    let s = config.vision_tower()?.image_size;
    let pixels = Rng::new(1).normal(3 * s * s, 1.0);
    if let Some(dir) = &args.write_inputs {
        write_inputs(dir, &args.preset, &prompt, &pixels)?;
    }
    let opts = RunOptions { max_new_tokens: args.new_tokens, eos: None, ..Default::default() };
    // Warm-up: pipeline compilation, first-touch allocation.
    pollster::block_on(model.run(&ctx, &prompt, &pixels, &RunOptions { max_new_tokens: 2, eos: None, ..Default::default() }))?;
    ctx.memory().reset_peak();
    // The decode steps' host work the old way first (a new uniform buffer per dispatch), then
    // the measured run with pooled uniforms.
    ctx.set_uniform_buffer_per_dispatch(true);
    let old_way = pollster::block_on(model.run(&ctx, &prompt, &pixels, &opts))?;
    ctx.set_uniform_buffer_per_dispatch(false);
    ctx.memory().reset_peak();
    let out = pollster::block_on(model.run(&ctx, &prompt, &pixels, &opts))?;
    let prefill = out.prefill_time.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN);
    let decode = out.decode_time.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN);
    let decoded = out.tokens.len().saturating_sub(1);
    // The explanation of the same prompt, as the paper computes it (the answer token, every
    // head's score, the best head's map; no logit lens): one untimed run (its kernels compile),
    // then the median of five, wall clock from pixels in to scores read back.
    let paper = llava_lens_explain::ExplainOptions { lens_k: 0, ..Default::default() };
    let explain = || pollster::block_on(llava_lens_explain::explain(&model, &ctx, &prompt, &pixels, &paper));
    explain()?;
    let mut runs = Vec::new();
    let counts_before = ctx.memory().host_counts();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let e = explain()?;
        runs.push((t.elapsed().as_secs_f64() * 1e3, e));
    }
    let explain_host = ctx.memory().host_counts() - counts_before;
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (explain_ms, e) = runs.swap_remove(2);
    let peak = ctx.memory().peak();
    let estimate =
        Llava::weight_bytes_estimate(&config, args.dtype).0 + Llava::working_bytes_estimate(&config, out.prompt_len + args.new_tokens);
    let decoder_k = config.text.hidden_size;
    let decoder_dtype = llava_lens_model::weights::gpu_dtype(args.dtype, llava_lens_model::weights::Role::DecoderLinear, decoder_k);
    let info = &ctx.adapter_info;
    let record = json!({
        "bench": "e2e",
        "preset": args.preset,
        "dtype": args.dtype.name(),
        "core_features_only": args.core_features,
        "reduced_precision": args.reduced_precision,
        // The kernel the decoder's projections take (the preset's hidden size as K).
        "matvec_kernel": format!("{:?}", llava_lens_gpu::ops::MatvecKernel::for_matrix(&ctx, decoder_dtype, decoder_k)),
        "adapter": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "load_s_random_weights": load_s,
        "sequence_length": out.prompt_len,
        "image_to_first_token_ms": prefill * 1e3,
        "prefill_tokens_per_s": out.prompt_len as f64 / prefill,
        "decode_tokens": decoded,
        "decode_tokens_per_s": decoded as f64 / decode,
        "weight_bytes": model.weight_bytes,
        "explain_ms": explain_ms,
        "explain_forward_ms": e.timings_ms.forward,
        "explain_head_scores_ms": e.timings_ms.head_scores,
        "explain_position_scores_ms": e.timings_ms.position_scores,
        "explain_bytes_read_back": e.bytes_read_back,
        // Per explanation (the five runs' counts / 5): each submit is a wait for the GPU.
        "explain_host": json!({
            "dispatches": explain_host.dispatches as f64 / 5.0,
            "bind_groups_created": explain_host.bind_groups as f64 / 5.0,
            "buffers_created": explain_host.buffers as f64 / 5.0,
            "submits": explain_host.submits as f64 / 5.0,
        }),
        "peak_gpu_bytes": peak,
        // The bound a page checks before loading: weights plus working memory for this sequence.
        "estimated_gpu_bytes": estimate,
        "within_estimate": peak <= estimate,
        "fits_7b_q4_budget": (args.preset == "llava-1.5-7b" && args.dtype == WeightDType::Q4).then_some(peak <= BUDGET_7B_Q4),
        // The host's work per decode token (the same on every GPU): what a static plan removes.
        "decode_host_per_token": per_token(&out),
        "decode_host_per_token_uniform_buffer_per_dispatch": per_token(&old_way),
        "decode_tokens_per_s_uniform_buffer_per_dispatch": old_way.decode_steps as f64 / old_way.decode_time.map_or(f64::NAN, |d| d.as_secs_f64()),
    });
    crate::print_out(record)?;
    Ok(())
}

/// The decode steps' host counts and recording time, per token.
fn per_token(out: &llava_lens_model::RunOutput) -> serde_json::Value {
    let n = out.decode_steps.max(1) as f64;
    let h = out.decode_host;
    json!({
        "tokens": out.decode_steps,
        "dispatches": h.dispatches as f64 / n,
        "bind_groups_created": h.bind_groups as f64 / n,
        "buffers_created": h.buffers as f64 / n,
        "submits": h.submits as f64 / n,
        "encode_ms": out.decode_encode_time.map(|t| t.as_secs_f64() * 1e3 / n),
    })
}
