//! Sequences past the per-query attention kernel's 3072 keys run end to end: a 3200-token
//! prefill (flash attention) and the same sequence as a 3199-token prefill plus one decode step
//! (split-key attention) give the same next-token logits.

use llava_lens_gpu::capture::CapturePlan;
use llava_lens_gpu::{ContextOptions, GpuContext, GpuTensor, Recorder, ops, read_f32_blocking};
use llava_lens_model::llama::LayerCaptures;
use llava_lens_model::{Llava, LlavaConfig, Prompt, RandomWeights, WeightDType, tiny};

#[test]
fn a_3200_token_prefill_equals_prefill_and_decode() {
    let ctx = GpuContext::new_blocking(ContextOptions::default()).expect("an adapter (lavapipe on CI)");
    let mut json = tiny::tiny_config(true);
    json["text_config"]["max_position_embeddings"] = 4096.into();
    let config = LlavaConfig::parse(&json.to_string(), std::path::Path::new("tiny")).unwrap();
    let model = pollster::block_on(Llava::load(&ctx, &RandomWeights { seed: 3 }, &config, WeightDType::F32, None)).unwrap();
    let vocab = config.text.vocab_size as u32;
    let image_token = config.image_token_index.unwrap();
    let ids: Vec<u32> = (0..3300u32).map(|i| 3 + (i * 7919) % (vocab - 3)).filter(|&id| id != image_token).take(3200).collect();
    assert!(ids.len() == 3200 && ids.len() > ops::MAX_KEYS);
    let plan = CapturePlan::new();

    // The whole sequence in one prefill.
    let mut rec = Recorder::new(&ctx, "long prefill");
    let whole = model.prefill(&mut rec, &Prompt { ids: ids.clone(), image_offset: None }, &[], &plan, 0).unwrap();
    let want = model.logits_at(&mut rec, &whole.hidden, 3199).unwrap();
    rec.submit();
    let want = read_f32_blocking(&ctx, &want).unwrap();

    // All but the last token, then the last one as a decode step against the cache.
    let mut rec = Recorder::new(&ctx, "long prefill and decode");
    let mut pre = model.prefill(&mut rec, &Prompt { ids: ids[..3199].to_vec(), image_offset: None }, &[], &plan, 1).unwrap();
    let id = GpuTensor::from_u32(&ctx, &ids[3199..], &[1], "token").unwrap();
    let x = GpuTensor::zeros(&ctx, &[1, config.text.hidden_size], "embed");
    let lm = &model.language_model;
    ops::embedding(&mut rec, &id, &lm.embed_tokens, &x).unwrap();
    let h = lm.forward(&mut rec, x, &mut pre.cache, &plan, &mut LayerCaptures::default(), None).unwrap();
    let got = model.logits_at(&mut rec, &h, 0).unwrap();
    rec.submit();
    let got = read_f32_blocking(&ctx, &got).unwrap();

    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-4 * scale.max(1.0), "logits after 3200 tokens: decode vs prefill differ by {worst} (largest {scale})");
    assert!(want.iter().all(|v| v.is_finite()));
}
