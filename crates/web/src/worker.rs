//! The worker: owns the GPU context and the model, answers [`Request`]s one at a time.
//!
//! Loading fetches the folder's files, keeps the safetensors bytes only until their tensors are
//! on the GPU (quantised on the way by the loader), and reports progress per tensor.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_gpu::{ContextOptions, GpuContext, GpuError};
use llava_lens_model::preprocess::{ResizeMode, decode_image, preprocess};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, WeightDType};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::protocol::{Request, Response};
use crate::share::Recorded;

struct Session {
    name: String,
    ctx: GpuContext,
    model: Llava,
    tokenizer: LlavaTokenizer,
    config: LlavaConfig,
}

thread_local! {
    static SESSION: RefCell<Option<Rc<Session>>> = const { RefCell::new(None) };
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(r: &Response) {
    // A failed post means the page is gone; nothing is left to tell.
    let _ = scope().post_message(&JsValue::from_str(&r.to_json()));
}

pub fn start() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        let Some(text) = ev.data().as_string() else {
            post(&Response::Error { message: "the worker expects JSON text messages".into() });
            return;
        };
        match serde_json::from_str::<Request>(&text) {
            Ok(req) => wasm_bindgen_futures::spawn_local(async move {
                if let Err(message) = handle(req).await {
                    post(&Response::Error { message });
                }
            }),
            Err(e) => post(&Response::Error { message: format!("unreadable request: {e}") }),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&Response::Ready);
}

async fn handle(req: Request) -> Result<(), String> {
    match req {
        Request::Load { base_url, dtype } => load(&base_url, &dtype).await,
        Request::Explain { image_base64, question, answer_prefix, target, contrast, top_k_heads } => {
            let s = SESSION.with(|s| s.borrow().clone()).ok_or("no model is loaded yet")?;
            let ask =
                Ask { question: &question, prefix: &answer_prefix, target: target.as_deref(), contrast: contrast.as_deref(), top_k_heads };
            explain_one(&s, &image_base64, &ask).await
        }
    }
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let resp = JsFuture::from(scope().fetch_with_str(url)).await.map_err(|e| format!("could not fetch {url}: {e:?}"))?;
    let resp: web_sys::Response = resp.unchecked_into();
    if !resp.ok() {
        return Err(format!("fetching {url} failed: HTTP {}", resp.status()));
    }
    let buf =
        JsFuture::from(resp.array_buffer().map_err(|e| format!("{url}: {e:?}"))?).await.map_err(|e| format!("reading {url}: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

async fn load(base_url: &str, dtype: &str) -> Result<(), String> {
    let dtype: WeightDType = dtype.parse()?;
    let base = if base_url.ends_with('/') { base_url.to_string() } else { format!("{base_url}/") };
    let stage = |s: &str, done: u64, total: u64| post(&Response::Progress { stage: s.into(), done, total });
    stage("config and tokenizer", 0, 2);
    let config_text =
        String::from_utf8(fetch_bytes(&format!("{base}config.json")).await?).map_err(|_| format!("{base}config.json is not UTF-8 text"))?;
    let config = LlavaConfig::parse(&config_text, &PathBuf::from(format!("{base}config.json"))).map_err(|e| e.to_string())?;
    let tok_bytes = fetch_bytes(&format!("{base}tokenizer.json")).await?;
    let tokenizer = LlavaTokenizer::from_bytes(&tok_bytes, &PathBuf::from(format!("{base}tokenizer.json")), config.image_token_index)
        .map_err(|e| e.to_string())?;
    stage("weights download", 0, 1);
    let weights = fetch_bytes(&format!("{base}model.safetensors")).await?;
    let ckpt = Checkpoint::from_files(vec![(PathBuf::from(format!("{base}model.safetensors")), weights)]).map_err(|e| e.to_string())?;
    stage("GPU", 0, 1);
    let ctx = GpuContext::new(ContextOptions::default()).await.map_err(|e| match e {
        GpuError::NoAdapter { .. } => format!("{e} Share links still open without it."),
        e => e.to_string(),
    })?;
    // WebGPU reports validation errors and device loss asynchronously; without a handler they
    // only reach the console and the page would show numbers from buffers nothing wrote.
    ctx.device.on_uncaptured_error(std::sync::Arc::new(|e: wgpu::Error| {
        let message = format!("the GPU reported an error: {e}");
        web_sys::console::error_1(&JsValue::from_str(&message));
        post(&Response::Error { message })
    }));
    let total = Llava::tensor_count(&config) as u64;
    let done = std::cell::Cell::new(0u64);
    let tick = |_: &str| {
        done.set(done.get() + 1);
        stage("upload to the GPU", done.get(), total);
    };
    let model = Llava::load(&ctx, &ckpt, &config, dtype, Some(&tick)).map_err(|e| e.to_string())?;
    drop(ckpt);
    post(&Response::Loaded {
        model: base.clone(),
        adapter: ctx.describe(),
        weight_bytes: model.weight_bytes,
        grid: config.vision.grid(),
        layers: config.text.num_hidden_layers,
        heads: config.text.num_attention_heads,
    });
    SESSION.with(|s| *s.borrow_mut() = Some(Rc::new(Session { name: base, ctx, model, tokenizer, config })));
    Ok(())
}

/// What the page asked to explain.
struct Ask<'a> {
    question: &'a str,
    prefix: &'a str,
    target: Option<&'a str>,
    contrast: Option<&'a str>,
    top_k_heads: usize,
}

/// The id of a token the user typed: the word with LLaMA's leading-space marker first (how
/// answers are tokenised after "... is"), else the text as it is.
fn token_of(tokenizer: &LlavaTokenizer, text: &str) -> Result<u32, String> {
    let t = text.trim();
    tokenizer.token_id(&format!("▁{t}")).or_else(|| tokenizer.token_id(t)).ok_or_else(|| format!("{t:?} is not one token of this model"))
}

async fn explain_one(s: &Session, image_b64: &str, ask: &Ask<'_>) -> Result<(), String> {
    let (question, prefix) = (ask.question, ask.prefix);
    let t0 = js_sys::Date::now();
    let bytes = STANDARD.decode(image_b64).map_err(|e| format!("the image was not sent intact: {e}"))?;
    let img = decode_image(&bytes, "the chosen image").map_err(|e| e.to_string())?;
    let pre = preprocess(&img, s.config.vision.image_size, ResizeMode::CenterCrop).map_err(|e| e.to_string())?;
    let prompt = s.tokenizer.prompt(question, prefix).map_err(|e| e.to_string())?;
    let target = ask.target.filter(|t| !t.trim().is_empty()).map(|t| token_of(&s.tokenizer, t)).transpose()?;
    let contrast = ask.contrast.filter(|t| !t.trim().is_empty()).map(|t| token_of(&s.tokenizer, t)).transpose()?;
    let opts = ExplainOptions {
        target,
        contrast,
        top_k_heads: ask.top_k_heads.max(1),
        lens_k: 5,
        model_name: s.name.clone(),
        ..Default::default()
    };
    let mut e = explain(&s.model, &s.ctx, &prompt, &pre.pixels, &opts).await.map_err(|e| e.to_string())?;
    e.name_tokens(|id| s.tokenizer.token(id));
    let top: Vec<(String, f32)> = e.top.iter().map(|t| (t.text.clone().unwrap_or_default(), t.log_prob.exp())).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&pre.crop_rgb)
        .map_err(|e| format!("encoding the crop: {e}"))?;
    let recorded = Recorded {
        model: s.name.clone(),
        question: question.into(),
        answer_prefix: prefix.into(),
        target: e.target.text.clone().unwrap_or_default(),
        target_log_prob: e.target.log_prob,
        top,
        grid: e.grid,
        patch_scores: e.patch_scores.clone(),
        baseline_map: e.baseline_map.clone(),
        head_scores: e.head_scores.clone(),
        best_head: (e.best_head.layer, e.best_head.head),
        contrast: e.contrast.as_ref().and_then(|c| c.text.clone()),
        crop_jpeg: jpeg,
    };
    let mut doc = serde_json::to_value(&e).map_err(|e| e.to_string())?;
    if let (Some(obj), Some(lens)) = (doc.as_object_mut(), &e.logit_lens) {
        let text: Vec<Vec<String>> =
            lens.embedding.iter().map(|r| r.iter().map(|&id| s.tokenizer.token(id).unwrap_or_default()).collect()).collect();
        obj.insert("logit_lens_text".into(), serde_json::json!({"embedding": text}));
    }
    post(&Response::Explained { explanation: doc, recorded: Box::new(recorded), millis: js_sys::Date::now() - t0 });
    Ok(())
}
