//! The interventions on the last explanation's input (crates/explain/src/intervene): a patch
//! knockout, activation patching from it into a corrupted input, the whole answer explained.
//! Each builds its own [`Intervener`] (one base pass) for the request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use llava_lens_explain::ExplainOptions;
use llava_lens_explain::intervene::ablation::Ablation;
use llava_lens_explain::intervene::answer::explain_answer;
use llava_lens_explain::intervene::{Intervener, Targets, patching};
use llava_lens_model::preprocess::{ResizeMode, decode_image, preprocess};

use super::{post, session_and_last};
use crate::protocol::{PatchPositions, Response};
use crate::share::Recorded;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The last explanation's token, and its contrast if it had one.
fn targets_of(e: &llava_lens_explain::Explanation) -> Targets {
    Targets { target: e.target.id, contrast: e.contrast.as_ref().map(|c| c.id) }
}

pub(super) async fn knockout(patches: &[usize]) -> Result<(), String> {
    let (s, last) = session_and_last("a knockout removes patches of")?;
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let targets = targets_of(&last.explanation);
    let mut iv = Intervener::new(&s.model, &s.ctx, &last.prompt, &last.pixels).await.map_err(err)?;
    let mut before = iv.base_outcome(targets).await.map_err(err)?;
    let mut after = iv.knockout(patches, targets).await.map_err(err)?;
    before.name_tokens(&s.tokenizer);
    after.name_tokens(&s.tokenizer);
    post(&Response::KnockedOut {
        patches: patches.to_vec(),
        before: Box::new(before),
        after: Box::new(after),
        millis: js_sys::Date::now() - t0,
    });
    Ok(())
}

pub(super) async fn ablate(heads: &[(usize, usize)], mode: Ablation) -> Result<(), String> {
    let (s, last) = session_and_last("an ablation changes the model on")?;
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let targets = targets_of(&last.explanation);
    let mut iv = Intervener::new(&s.model, &s.ctx, &last.prompt, &last.pixels).await.map_err(err)?;
    let mut a = iv.ablate(heads, mode, targets).await.map_err(err)?;
    a.before.name_tokens(&s.tokenizer);
    a.after.name_tokens(&s.tokenizer);
    post(&Response::Ablated { ablation: Box::new(a), millis: js_sys::Date::now() - t0 });
    Ok(())
}

pub(super) async fn patch(image_b64: &str, question: &str, positions: PatchPositions) -> Result<(), String> {
    let (s, last) = session_and_last("patching takes activations from")?;
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let bytes = STANDARD.decode(image_b64).map_err(|e| format!("the corrupted image was not sent intact: {e}"))?;
    let img = decode_image(&bytes, "the corrupted image").map_err(err)?;
    let pixels = preprocess(&img, &s.processor, ResizeMode::CenterCrop).map_err(err)?.pixels;
    let prompt = s.tokenizer.prompt(question, &last.prefix).map_err(err)?;
    let mut clean = Intervener::new(&s.model, &s.ctx, &last.prompt, &last.pixels).await.map_err(err)?;
    let mut corrupt = Intervener::new(&s.model, &s.ctx, &prompt, &pixels).await.map_err(err)?;
    let (seq, image) = (clean.seq, clean.image_span());
    let chosen = positions.select(seq, image);
    let mut p = patching::patch(&mut clean, &mut corrupt, &chosen, None, None).await.map_err(err)?;
    p.clean.name_tokens(&s.tokenizer);
    p.corrupted.name_tokens(&s.tokenizer);
    let grid = s.model.config.vision.as_ref().map_or(0, |v| v.grid()).max(1);
    let ids = &last.prompt.ids;
    let labels = (0..seq)
        .map(|pos| {
            if (image.0..image.0 + image.1).contains(&pos) {
                let k = pos - image.0;
                format!("patch {},{}", k / grid, k % grid)
            } else {
                let id = if pos < image.0 || image.1 == 0 { ids[pos] } else { ids[pos + 1 - image.1] };
                s.tokenizer.token(id).unwrap_or_default()
            }
        })
        .collect();
    let word = |id: u32| s.tokenizer.token(id).unwrap_or_default();
    let (target, contrast) = (word(p.target), word(p.contrast));
    post(&Response::Patched { patching: Box::new(p), labels, target, contrast, millis: js_sys::Date::now() - t0 });
    Ok(())
}

pub(super) async fn answer(max_tokens: usize) -> Result<(), String> {
    let (s, last) = session_and_last("the whole answer continues")?;
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let opts = ExplainOptions { lens_k: 5, top_k_heads: 3, model_name: s.name.clone(), ..Default::default() };
    let a =
        explain_answer(&s.model, &s.ctx, &last.prompt, &last.pixels, &opts, max_tokens.clamp(1, 16), s.tokenizer.eos).await.map_err(err)?;
    let mut explanations = a.explanations;
    let mut recorded = Vec::with_capacity(explanations.len());
    for (i, e) in explanations.iter_mut().enumerate() {
        e.name_tokens(&s.tokenizer);
        e.crop = last.explanation.crop;
        // Each token's prefix is the answer prefix and the tokens before it.
        let before = s.tokenizer.decode(&a.tokens[..i]).map_err(err)?;
        let prefix = format!("{}{}{before}", last.prefix, if last.prefix.is_empty() || before.is_empty() { "" } else { " " });
        recorded.push(Recorded::of(e, &s.name, &last.question, prefix.trim(), last.crop_jpeg.clone()));
    }
    let tokens = a.tokens.iter().map(|&t| s.tokenizer.token(t).unwrap_or_default()).collect();
    post(&Response::AnswerExplained { tokens, explanations, recorded, millis: js_sys::Date::now() - t0 });
    Ok(())
}

pub(super) async fn zoom(zoom: f32, seeds: usize) -> Result<(), String> {
    use llava_lens_explain::intervene::zoom::{ZoomInput, crop_part};
    let (s, last) = session_and_last("zooming crops")?;
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let e = &last.explanation;
    let c = e.crop.ok_or("the explanation has no picture to crop")?;
    let input = ZoomInput {
        prompt: &last.prompt,
        pixels: &last.pixels,
        original: &last.image,
        processor: &s.processor,
        region: llava_lens_model::preprocess::CropBox { x: c.x, y: c.y, width: c.width, height: c.height },
        grid: e.grid,
        scores: &e.patch_scores,
    };
    let mut z = llava_lens_explain::intervene::zoom::zoom(&s.model, &s.ctx, &input, zoom, 0..seeds.min(16) as u64, targets_of(e))
        .await
        .map_err(err)?;
    z.name_tokens(&s.tokenizer);
    let mut window_jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut window_jpeg, 90)
        .encode_image(&crop_part(&last.image, z.map.crop))
        .map_err(|e| format!("encoding the window: {e}"))?;
    post(&Response::Zoomed {
        before: Box::new(z.before),
        by_map: Box::new(z.map),
        random: z.random,
        window_jpeg,
        millis: js_sys::Date::now() - t0,
    });
    Ok(())
}
