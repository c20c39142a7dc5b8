//! The Llava family beyond llava-1.5 against HF transformers. Each variant is a tiny model made
//! by transformers itself (scripts/golden/make_tiny_hf.py) with the real checkpoint's
//! architecture classes and config fields, and a golden file of what
//! LlavaForConditionalGeneration computed on one of the test images
//! (scripts/golden/make_fixtures.py):
//! - tests/data/tiny-llava-siglip: llava-interleave's SigLIP tower (feature layer -1, "full",
//!   a patch grid with a remainder) on a LLaMA decoder;
//! - tests/data/tiny-llava-mistral: bakLLaVA's Mistral decoder (sliding window, rope_theta 1e6)
//!   under a CLIP tower;
//! - tests/data/tiny-llava-qwen: llava-interleave-qwen whole: the SigLIP tower, a Qwen2 decoder
//!   (q/k/v biases, lm_head tied to the embeddings), Qwen's byte-level BPE tokenizer layout and
//!   the ChatML prompt of its chat template;
//! - tests/data/tiny-llava-layers: a list of feature layers, [-1, 0, -3], concatenated (the
//!   class token dropped from each) before a three-times-wider linear_1.

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_model::PromptParts;
use llava_lens_model::config::{TextKind, VisionKind};
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, load_image, preprocess};
use llava_lens_model::tokenizer::PromptTemplate;
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, RunOptions, WeightDType};
use llava_lens_tests::ctx;
use llava_lens_tests::golden::{Golden, data};

const QUESTION: &str = "What is the color of the dog?";
const PREFIX: &str = "The color of the dog is";

/// (model folder, image the fixture was made from)
const VARIANTS: [(&str, &str); 4] = [
    ("tiny-llava-siglip", "tall-301x689"),
    ("tiny-llava-mistral", "wide-alpha-640x233"),
    ("tiny-llava-qwen", "small-97x61"),
    ("tiny-llava-layers", "tall-301x689"),
];

fn golden(model: &str) -> Golden {
    Golden::open(&format!("golden/{model}.safetensors"))
}

fn parts(model: &str) -> (LlavaConfig, LlavaTokenizer) {
    let dir = data(model);
    let c = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), c.image_token_index).unwrap();
    (c, tok)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_configs_read_as_the_real_checkpoints_do() {
    let (s, _) = parts("tiny-llava-siglip");
    assert_eq!(s.vision.as_ref().unwrap().kind, VisionKind::Siglip);
    // 64 px in 12 px patches: 5 x 5 (4 px left over), no class token: 25 image rows; feature
    // layer -1 runs all 3 layers.
    assert_eq!((s.vision.as_ref().unwrap().grid(), s.image_tokens(), s.vision_layers_to_run()), (5, 25, 3));
    assert_eq!(ImageProcessor::load(&data("tiny-llava-siglip"), &s).unwrap(), ImageProcessor::siglip(64));
    let (m, _) = parts("tiny-llava-mistral");
    assert_eq!((m.text.kind, m.text.sliding_window, m.text.rope_theta), (TextKind::Mistral, Some(4096), 1e6));
    // No preprocessor_config.json: the CLIP tower's usual processor.
    assert_eq!(ImageProcessor::load(&data("tiny-llava-mistral"), &m).unwrap(), ImageProcessor::clip(56));
    // The tie is named only in text_config, as in llava-interleave-qwen-0.5b-hf's config.json.
    let (q, tok) = parts("tiny-llava-qwen");
    assert_eq!((q.text.kind, q.text.qkv_bias, q.text.tie_word_embeddings, q.text.rope_theta), (TextKind::Qwen2, true, true, 1e6));
    assert_eq!((q.text.sliding_window, q.vision.as_ref().map(|v| v.kind), q.image_tokens()), (None, Some(VisionKind::Siglip), 25));
    // ChatML's end of turn ends an answer; there is no start token.
    assert_eq!((tok.template, tok.bos, tok.eos), (PromptTemplate::ChatMl, None, tok.token_id("<|im_end|>")));
    assert_eq!(parts("tiny-llava-mistral").1.template, PromptTemplate::Llava15);
    // Hidden states 3 (the last layer's output), 0 (the embeddings) and 1, in that order.
    let (l, _) = parts("tiny-llava-layers");
    assert_eq!((l.vision_feature_states(), l.vision_layers_to_run(), l.image_tokens()), (vec![3, 0, 1], 3, 16));
}

#[test]
fn pixels_and_prompts_are_hfs() {
    for (model, image) in VARIANTS {
        let g = golden(model);
        let (c, tok) = parts(model);
        let img = load_image(&data(&format!("images/{image}.png"))).unwrap();
        let px = preprocess(&img, &ImageProcessor::load(&data(model), &c).unwrap(), ResizeMode::CenterCrop).unwrap().pixels;
        let want = g.f32("pixel_values");
        assert!(px.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "{model}: pixel values differ from the processor's");
        assert_eq!(tok.prompt(QUESTION, PREFIX).unwrap().ids, g.ids("input_ids"), "{model}: prompt ids");
    }
}

#[test]
fn f32_forward_matches_hf_within_1e_4() {
    for (model, _) in VARIANTS {
        let g = golden(model);
        let (config, tok) = parts(model);
        let weights = Checkpoint::open(&data(model)).unwrap();
        let llava = pollster::block_on(Llava::load(ctx(), &weights, &config, WeightDType::F32, None)).unwrap();
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
        let out = pollster::block_on(llava.run(ctx(), &prompt, g.f32("pixel_values"), &opts)).unwrap();
        let mut checks: Vec<(String, Vec<f32>, Vec<f32>)> = vec![
            ("image_features".into(), out.image_features.clone().unwrap(), g.f32("image_features").to_vec()),
            ("logits".into(), out.logits.clone().unwrap(), g.f32("logits").to_vec()),
            (
                "resid_final".into(),
                out.captures[&format!("blocks.{}.hook_resid_post", layers - 1)].1.clone(),
                g.f32("resid_final").to_vec(),
            ),
        ];
        let (d, row) = (config.text.hidden_size, heads.len() * g.shape("attn_last_row")[2]);
        for l in 0..layers {
            let resid = &g.f32("resid_pre")[l * d..(l + 1) * d];
            checks.push((format!("resid_pre {l}"), out.captures[&format!("blocks.{l}.hook_resid_pre")].1.clone(), resid.to_vec()));
            let attn = &g.f32("attn_last_row")[l * row..(l + 1) * row];
            checks.push((format!("attention row {l}"), out.captures[&format!("blocks.{l}.attn.hook_pattern")].1.clone(), attn.to_vec()));
        }
        for (name, got, want) in checks {
            let e = max_abs(&got, &want);
            eprintln!("{model} {name}: max abs error {e:.2e}");
            assert!(e <= 1e-4, "{model} {name}: max abs error {e}");
        }
        assert_eq!(out.tokens, g.ids("greedy_tokens")[..out.tokens.len()], "{model}: greedy tokens");
    }
}

#[test]
fn sequences_past_mistrals_sliding_window_are_refused_not_miscomputed() {
    let (mut c, tok) = parts("tiny-llava-mistral");
    let ids = tok.prompt(QUESTION, PREFIX).unwrap().ids.len();
    // 35 prompt ids with 16 image rows: 50 positions.
    assert!(c.check_positions(ids, 8).is_ok());
    c.text.sliding_window = Some(40);
    let err = c.check_positions(ids, 0).unwrap_err();
    assert!(err.contains("past the decoder's sliding attention window of 40 (text_config.sliding_window)"), "{err}");
    let llava = pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&data("tiny-llava-mistral")).unwrap(), &c, WeightDType::F32, None))
        .unwrap();
    let g = golden("tiny-llava-mistral");
    let opts = RunOptions { max_new_tokens: 1, ..Default::default() };
    let err = pollster::block_on(llava.run(ctx(), &tok.prompt(QUESTION, PREFIX).unwrap(), g.f32("pixel_values"), &opts)).unwrap_err();
    assert!(err.to_string().contains("exceed the decoder's sliding attention window of 40"), "{err}");
}

#[test]
fn text_only_prompts_run_the_decoder_alone_as_hf_does() {
    // scripts/golden/make_fixtures.py --text-context: the question after a text, no image.
    let context = "The dog in the picture is brown and the cat next to it is black.";
    for model in ["tiny-llava", "tiny-llava-qwen", "tiny-vicuna"] {
        let g = golden(&format!("{model}-text"));
        let (config, tok) = parts(model);
        let llava =
            pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&data(model)).unwrap(), &config, WeightDType::F32, None)).unwrap();
        let prompt = tok.prompt_with(PromptParts { image: false, context }, QUESTION, PREFIX).unwrap();
        assert_eq!((prompt.ids.clone(), prompt.image_offset), (g.ids("input_ids"), None), "{model}: prompt ids");
        let (layers, last) = (config.text.num_hidden_layers, prompt.ids.len() - 1);
        let heads: Vec<usize> = (0..config.text.num_attention_heads).collect();
        let mut plan = CapturePlan::new();
        for l in 0..layers {
            plan.add(Hook::resid_pre(l), &[last], &[]).unwrap();
            plan.add(Hook::pattern(l), &[last], &heads).unwrap();
        }
        let opts = RunOptions { max_new_tokens: 8, keep_logits: true, plan, eos: tok.eos, ..Default::default() };
        let out = pollster::block_on(llava.run(ctx(), &prompt, &[], &opts)).unwrap();
        let e = max_abs(out.logits.as_ref().unwrap(), g.f32("logits"));
        assert!(e <= 1e-4, "{model} text logits: max abs error {e}");
        let (d, row) = (config.text.hidden_size, heads.len() * prompt.ids.len());
        for l in 0..layers {
            let e = max_abs(&out.captures[&format!("blocks.{l}.hook_resid_pre")].1, &g.f32("resid_pre")[l * d..(l + 1) * d]);
            assert!(e <= 1e-4, "{model} text resid_pre {l}: {e}");
            let e = max_abs(&out.captures[&format!("blocks.{l}.attn.hook_pattern")].1, &g.f32("attn_last_row")[l * row..(l + 1) * row]);
            assert!(e <= 1e-4, "{model} text attention row {l}: {e}");
        }
        assert_eq!(out.tokens, g.ids("greedy_tokens")[..out.tokens.len()], "{model}: greedy tokens");
        // An image given with a text-only prompt is refused, not ignored.
        let err = pollster::block_on(llava.run(ctx(), &prompt, &[0.0; 3], &opts)).unwrap_err().to_string();
        assert!(err.contains("text-only prompt"), "{err}");
    }
}

#[test]
fn a_plain_decoder_checkpoint_loads_without_a_vision_tower_and_refuses_images() {
    // tests/data/tiny-vicuna: LlamaForCausalLM as transformers saved it (`model.layers.N...`,
    // `lm_head.weight`, model_type "llama" at the top).
    let (c, tok) = parts("tiny-vicuna");
    assert_eq!((c.vision.is_none(), c.image_token_index, c.image_tokens(), tok.image_token), (true, None, 0, None));
    assert_eq!((c.text.kind, c.text.num_hidden_layers, c.text.hidden_size), (TextKind::Llama, 2, 64));
    let err = tok.prompt(QUESTION, PREFIX).unwrap_err().to_string();
    assert!(err.contains("no vision tower: give a text context"), "{err}");
    let llava =
        pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&data("tiny-vicuna")).unwrap(), &c, WeightDType::Q4, None)).unwrap();
    assert!(llava.vision_tower.is_none() && llava.multi_modal_projector.is_none());
    assert_eq!(llava.weight_bytes, Llava::weight_bytes_estimate(&c, WeightDType::Q4).0);
    let err = ImageProcessor::load(&data("tiny-vicuna"), &c).unwrap_err().to_string();
    assert!(err.contains("text-only llama checkpoint"), "{err}");
}
