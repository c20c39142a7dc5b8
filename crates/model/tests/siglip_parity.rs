//! The SigLIP vision tower against HF transformers: tests/data/tiny-llava-siglip was made by
//! transformers itself (scripts/golden/make_tiny_hf.py: SiglipVisionModel with
//! llava-interleave's feature layer -1 and "full" strategy, on tests/data/tiny-llava's LLaMA
//! decoder), and tests/data/golden/tiny-llava-siglip.safetensors holds what
//! LlavaForConditionalGeneration computed on the tall test image (scripts/golden/make_fixtures.py).

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_model::config::VisionKind;
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, load_image, preprocess};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, RunOptions, WeightDType};
use llava_lens_tests::ctx;
use llava_lens_tests::golden::{Golden, data};

const MODEL: &str = "tiny-llava-siglip";
const QUESTION: &str = "What is the color of the dog?";
const PREFIX: &str = "The color of the dog is";

fn golden() -> Golden {
    Golden::open("golden/tiny-llava-siglip.safetensors")
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_config_is_llava_interleaves_vision_side() {
    let c = LlavaConfig::load(&data(MODEL).join("config.json")).unwrap();
    assert_eq!(c.vision.kind, VisionKind::Siglip);
    // 64 px in 12 px patches: 5 x 5 (4 px left over), no class token: 25 image rows; feature
    // layer -1 runs all 3 layers.
    assert_eq!((c.vision.grid(), c.image_tokens(), c.vision_layers_to_run()), (5, 25, 3));
    let p = ImageProcessor::load(&data(MODEL), &c).unwrap();
    assert_eq!(p, ImageProcessor::siglip(64));
}

#[test]
fn pixels_and_prompt_are_hfs() {
    let g = golden();
    let dir = data(MODEL);
    let c = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let img = load_image(&data("images/tall-301x689.png")).unwrap();
    let px = preprocess(&img, &ImageProcessor::load(&dir, &c).unwrap(), ResizeMode::CenterCrop).unwrap().pixels;
    let want = g.f32("pixel_values");
    assert!(px.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "pixel values differ from SiglipImageProcessor's");
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), c.image_token_index).unwrap();
    let p = tok.prompt(QUESTION, PREFIX).unwrap();
    assert_eq!(p.ids, g.ids("input_ids"));
}

#[test]
fn f32_forward_matches_hf_within_1e_4() {
    let g = golden();
    let dir = data(MODEL);
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
    let model = pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&dir).unwrap(), &config, WeightDType::F32, None)).unwrap();
    let prompt = tok.prompt(QUESTION, PREFIX).unwrap();
    let last = prompt.ids.len() - 1 + config.image_tokens() - 1;
    let layers = config.text.num_hidden_layers;
    let heads: Vec<usize> = (0..config.text.num_attention_heads).collect();
    let mut plan = CapturePlan::new();
    for l in 0..layers {
        plan.add(Hook::resid_pre(l), &[last], &[]).unwrap();
        plan.add(Hook::pattern(l), &[last], &heads).unwrap();
    }
    plan.add(Hook::resid_post(layers - 1), &[last], &[]).unwrap();
    let opts = RunOptions { max_new_tokens: 8, keep_logits: true, keep_image_features: true, plan, eos: tok.eos, ..Default::default() };
    let out = pollster::block_on(model.run(ctx(), &prompt, g.f32("pixel_values"), &opts)).unwrap();
    let mut checks: Vec<(String, Vec<f32>, Vec<f32>)> = vec![
        ("image_features".into(), out.image_features.clone().unwrap(), g.f32("image_features").to_vec()),
        ("logits".into(), out.logits.clone().unwrap(), g.f32("logits").to_vec()),
        ("resid_final".into(), out.captures[&format!("blocks.{}.hook_resid_post", layers - 1)].1.clone(), g.f32("resid_final").to_vec()),
    ];
    let d = config.text.hidden_size;
    let keys = g.shape("attn_last_row")[2];
    for l in 0..layers {
        let row = heads.len() * keys;
        checks.push((
            format!("resid_pre {l}"),
            out.captures[&format!("blocks.{l}.hook_resid_pre")].1.clone(),
            g.f32("resid_pre")[l * d..(l + 1) * d].to_vec(),
        ));
        checks.push((
            format!("attention row {l}"),
            out.captures[&format!("blocks.{l}.attn.hook_pattern")].1.clone(),
            g.f32("attn_last_row")[l * row..(l + 1) * row].to_vec(),
        ));
    }
    for (name, got, want) in checks {
        let e = max_abs(&got, &want);
        eprintln!("{name}: max abs error {e:.2e}");
        assert!(e <= 1e-4, "{name}: max abs error {e}");
    }
    assert_eq!(out.tokens, g.ids("greedy_tokens")[..out.tokens.len()], "greedy tokens");
}
