//! The forward pass against HF transformers: tests/data/golden/tiny-llava.safetensors was written
//! by scripts/golden/make_fixtures.py (LlavaForConditionalGeneration, CPU, fp32, eager) for the
//! committed tiny model tests/data/tiny-llava (GQA) and image. Tests only read files.

use std::sync::OnceLock;

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, load_image, preprocess};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, RunOptions, RunOutput, WeightDType};
use llava_lens_tests::golden::{data, golden};

fn f32s(name: &str) -> &'static [f32] {
    golden().f32(name)
}

fn ctx() -> &'static GpuContext {
    static C: OnceLock<GpuContext> = OnceLock::new();
    C.get_or_init(|| GpuContext::new_blocking(ContextOptions::default()).unwrap_or_else(|e| panic!("parity tests need an adapter: {e}")))
}

fn model_parts() -> (LlavaConfig, LlavaTokenizer) {
    let dir = data("tiny-llava");
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
    (config, tok)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    num / want.iter().map(|w| (*w as f64).powi(2)).sum::<f64>()
}

const QUESTION: &str = "What is the color of the dog?";
const PREFIX: &str = "The color of the dog is";

fn run(dtype: WeightDType) -> RunOutput {
    let (config, tok) = model_parts();
    let ckpt = Checkpoint::open(&data("tiny-llava")).unwrap();
    let model = pollster::block_on(Llava::load(ctx(), &ckpt, &config, dtype, None)).unwrap();
    let prompt = tok.prompt(QUESTION, PREFIX).unwrap();
    let last = prompt.ids.len() - 1 + config.image_tokens() - 1;
    let mut plan = CapturePlan::new();
    let layers = config.text.num_hidden_layers;
    let heads: Vec<usize> = (0..config.text.num_attention_heads).collect();
    for l in 0..layers {
        plan.add(Hook::resid_pre(l), &[last], &[]).unwrap();
        plan.add(Hook::pattern(l), &[last], &heads).unwrap();
    }
    plan.add(Hook::resid_post(layers - 1), &[last], &[]).unwrap();
    let opts = RunOptions { max_new_tokens: 8, keep_logits: true, keep_image_features: true, plan, eos: tok.eos, ..Default::default() };
    // HF's own pixel_values: this test isolates the model from preprocessing.
    pollster::block_on(model.run(ctx(), &prompt, f32s("pixel_values"), &opts)).unwrap()
}

#[test]
fn prompt_ids_match_hf() {
    let (_, tok) = model_parts();
    let p = tok.prompt(QUESTION, PREFIX).unwrap();
    let want: Vec<u32> = golden().ids("input_ids");
    assert_eq!(p.ids, want);
    assert_eq!(p.image_offset.map(|o| o.to_string()).as_deref(), Some(golden().meta["image_offset"].as_str()));
}

#[test]
fn pixel_values_are_hfs_exactly() {
    let img = load_image(&data("images/scene-500x375.png")).unwrap();
    for (size, name) in [(56, "pixel_values"), (336, "pixel_values_336")] {
        let got = preprocess(&img, &ImageProcessor::clip(size as u32), ResizeMode::CenterCrop).unwrap().pixels;
        let want = f32s(name);
        let differ: Vec<usize> = (0..want.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
        assert!(
            differ.is_empty(),
            "{name}: {} of {} values differ from HF's CLIPImageProcessor, first at {}",
            differ.len(),
            want.len(),
            differ[0]
        );
    }
}

#[test]
fn pad_to_square_pixels_are_llava_expand2squares_exactly() {
    // LLaVA's expand2square: the 500 x 375 image on a 500 x 500 square of the mean colour, 62
    // rows from the top, then the processor (scripts/golden/make_fixtures.py).
    let img = load_image(&data("images/scene-500x375.png")).unwrap();
    let got = preprocess(&img, &ImageProcessor::clip(56), ResizeMode::PadToSquare).unwrap().pixels;
    let want = f32s("pixel_values_pad");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "pixel_values_pad[{i}] (row {}): {g} vs LLaVA {w}", i % (56 * 56) / 56);
    }
}

#[test]
fn f32_forward_matches_hf_within_1e_4() {
    let out = run(WeightDType::F32);
    let g = golden();
    eprintln!("fixture from transformers {} / torch {}", g.meta["transformers"], g.meta["torch"]);
    let checks: Vec<(&str, Vec<f32>, &[f32])> = vec![
        ("image_features", out.image_features.clone().unwrap(), f32s("image_features")),
        ("logits", out.logits.clone().unwrap(), f32s("logits")),
        ("resid_final", out.captures["blocks.1.hook_resid_post"].1.clone(), f32s("resid_final")),
    ];
    for (name, got, want) in checks {
        let e = max_abs(&got, want);
        eprintln!("{name}: max abs error {e:.2e}");
        assert!(e <= 1e-4, "{name}: max abs error {e}");
    }
    let layers = g.f32s["resid_pre"].0[0];
    let d = g.f32s["resid_pre"].0[1];
    let (heads, keys) = (g.f32s["attn_last_row"].0[1], g.f32s["attn_last_row"].0[2]);
    for l in 0..layers {
        let e = max_abs(&out.captures[&format!("blocks.{l}.hook_resid_pre")].1, &f32s("resid_pre")[l * d..(l + 1) * d]);
        assert!(e <= 1e-4, "resid_pre layer {l}: {e}");
        let got = &out.captures[&format!("blocks.{l}.attn.hook_pattern")].1;
        let e = max_abs(got, &f32s("attn_last_row")[l * heads * keys..(l + 1) * heads * keys]);
        assert!(e <= 1e-4, "attention row layer {l}: {e}");
    }
    let want: Vec<u32> = g.i64s["greedy_tokens"].iter().map(|&v| v as u32).collect();
    assert_eq!(out.tokens, want[..out.tokens.len()], "greedy tokens");
    assert!(out.tokens.len() == want.len() || out.tokens.last() == Some(&2), "stopped early without EOS");
}

/// Quantised and half-precision weights: NMSE of the logits against HF's fp32, and the same
/// first token when HF's top-1 margin is wide enough for the format's error.
#[test]
fn reduced_precision_stays_near_hf() {
    let want = f32s("logits");
    let mut sorted = want.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let margin = sorted[0] - sorted[1];
    let top1 = golden().i64s["greedy_tokens"][0] as u32;
    for (dtype, max_nmse, min_margin) in [(WeightDType::F16, 1e-5, 0.05), (WeightDType::Q8, 1e-3, 0.2), (WeightDType::Q4, 5e-2, 1.0)] {
        let out = run(dtype);
        let e = nmse(out.logits.as_ref().unwrap(), want);
        eprintln!("{}: logits NMSE {e:.2e} vs HF fp32 (top-1 margin {margin:.3})", dtype.name());
        assert!(e <= max_nmse, "{}: logits NMSE {e} > {max_nmse}", dtype.name());
        if margin >= min_margin {
            assert_eq!(out.tokens[0], top1, "{}: first greedy token", dtype.name());
        }
    }
}

/// The browser's loader converts large matrices a slice of rows at a time; with slices of two
/// rows every matrix of the tiny model takes that path, and the model computes exactly what the
/// whole-matrix upload computes.
#[test]
fn sliced_loads_compute_exactly_what_whole_loads_do() {
    let (config, tok) = model_parts();
    let ckpt = Checkpoint::open(&data("tiny-llava")).unwrap();
    let prompt = tok.prompt(QUESTION, PREFIX).unwrap();
    let opts = RunOptions { max_new_tokens: 1, keep_logits: true, keep_image_features: true, ..Default::default() };
    for dtype in [WeightDType::F32, WeightDType::F16, WeightDType::Q8, WeightDType::Q4] {
        let out = |chunk: usize| {
            let m = pollster::block_on(Llava::load_in_chunks(ctx(), &ckpt, &config, dtype, None, chunk)).unwrap();
            let o = pollster::block_on(m.run(ctx(), &prompt, f32s("pixel_values"), &opts)).unwrap();
            (m.weight_bytes, o.logits.unwrap(), o.image_features.unwrap())
        };
        let (whole, sliced) = (out(usize::MAX), out(2 * 4 * config.text.hidden_size));
        assert_eq!(whole.0, sliced.0, "{dtype:?}: weight bytes");
        assert_eq!(whole.1, sliced.1, "{dtype:?}: logits");
        assert_eq!(whole.2, sliced.2, "{dtype:?}: image features");
    }
}
