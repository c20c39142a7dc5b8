//! The worker: owns the GPU context and the model, answers [`Request`]s one at a time, in the
//! order they came.
//!
//! Models stream into the GPU one tensor at a time ([`load`]); URL models are kept in the
//! browser's storage ([`store`]) so a later visit loads offline.

mod intervene;
mod load;
mod net;
mod sources;
mod store;

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_gpu::{ContextOptions, GpuContext, GpuError};
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, decode_image, preprocess};
use llava_lens_model::{Llava, LlavaTokenizer};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::protocol::{Request, Response};
use crate::share::Recorded;

pub(crate) struct Session {
    name: String,
    ctx: Rc<GpuContext>,
    model: Llava,
    tokenizer: LlavaTokenizer,
    processor: ImageProcessor,
}

/// The last explanation with its inputs: what the faithfulness curves perturb.
struct LastExplained {
    explanation: llava_lens_explain::Explanation,
    prompt: llava_lens_model::Prompt,
    pixels: Vec<f32>,
    /// What the interventions' own explanations are drawn with: the question, the answer
    /// prefix and the model's view of the picture.
    question: String,
    prefix: String,
    crop_jpeg: Vec<u8>,
    /// The picture as the visitor gave it (zooming crops it).
    image: image::RgbImage,
}

thread_local! {
    static SESSION: RefCell<Option<Rc<Session>>> = const { RefCell::new(None) };
    static LAST: RefCell<Option<Rc<LastExplained>>> = const { RefCell::new(None) };
    static GPU: RefCell<Option<Rc<GpuContext>>> = const { RefCell::new(None) };
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// The size of the worker's linear memory: wasm memory grows and never shrinks, so this is the
/// peak the worker has needed so far.
fn wasm_memory_bytes() -> u64 {
    let mem: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    mem.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as u64
}

fn post(r: &Response) {
    // A failed post means the page is gone; nothing is left to tell.
    let _ = scope().post_message(&JsValue::from_str(&r.to_json()));
}

/// The GPU context, created on first use and again after a device loss.
async fn gpu() -> Result<Rc<GpuContext>, String> {
    if let Some(c) = GPU.with(|g| g.borrow().clone()) {
        return Ok(c);
    }
    let ctx = GpuContext::new(ContextOptions::default()).await.map_err(|e| match e {
        GpuError::NoAdapter { .. } => format!("{e} Share links still open without it."),
        e => e.to_string(),
    })?;
    // WebGPU reports validation errors and device loss asynchronously. The context keeps the
    // first error for the next readback (which then fails); the page hears of it at once too.
    ctx.on_error(std::sync::Arc::new(|message: &str| {
        web_sys::console::error_1(&JsValue::from_str(message));
        post(&Response::Error { message: message.to_string() })
    }));
    ctx.device.set_device_lost_callback(|reason, message| {
        // The model's buffers died with the device: forget both, so the next load starts afresh.
        SESSION.with(|s| s.borrow_mut().take());
        GPU.with(|g| g.borrow_mut().take());
        if reason != wgpu::DeviceLostReason::Destroyed {
            post(&Response::DeviceLost { message: format!("the GPU device was lost ({message})") });
        }
    });
    let ctx = Rc::new(ctx);
    GPU.with(|g| *g.borrow_mut() = Some(ctx.clone()));
    Ok(ctx)
}

/// A message is JSON text, or an array of the JSON text and `File`s (a model the user chose).
fn parse(data: JsValue) -> Result<(Request, Vec<web_sys::File>), String> {
    let (text, files) = if let Some(t) = data.as_string() {
        (t, Vec::new())
    } else if js_sys::Array::is_array(&data) {
        let a: js_sys::Array = data.unchecked_into();
        let text = a.get(0).as_string().ok_or("the first element of a message must be its JSON text")?;
        let files = a
            .iter()
            .skip(1)
            .map(|f| f.dyn_into::<web_sys::File>().map_err(|_| "messages carry File objects only"))
            .collect::<Result<_, _>>()?;
        (text, files)
    } else {
        return Err("the worker expects JSON text messages".into());
    };
    let req = serde_json::from_str::<Request>(&text).map_err(|e| format!("unreadable request: {e}"))?;
    Ok((req, files))
}

thread_local! {
    /// Requests wait here and run one at a time, in order: a check and a load of the same model,
    /// or a delete during a download, must not interleave their storage writes.
    static QUEUE: RefCell<std::collections::VecDeque<(Request, Vec<web_sys::File>)>> = const { RefCell::new(std::collections::VecDeque::new()) };
    static RUNNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn enqueue(req: Request, files: Vec<web_sys::File>) {
    QUEUE.with(|q| q.borrow_mut().push_back((req, files)));
    if RUNNING.with(|r| r.replace(true)) {
        return;
    }
    wasm_bindgen_futures::spawn_local(async {
        while let Some((req, files)) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
            if let Err(message) = handle(req, files).await {
                post(&Response::Error { message });
            }
        }
        RUNNING.with(|r| r.set(false));
    });
}

pub fn start() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| match parse(ev.data()) {
        Ok((req, files)) => enqueue(req, files),
        Err(message) => post(&Response::Error { message }),
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&Response::Ready);
}

async fn faithful(op: llava_lens_explain::faithfulness::Operator, steps: usize, seeds: usize) -> Result<(), String> {
    use llava_lens_explain::faithfulness::faithfulness;
    let s = SESSION.with(|s| s.borrow().clone()).ok_or("no model is loaded (load one first; after a GPU loss, load it again)")?;
    let last = LAST.with(|l| l.borrow().clone()).ok_or("explain an image first: the curves perturb the last explanation's input")?;
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let f = faithfulness(&s.model, &s.ctx, &last.prompt, &last.pixels, &last.explanation, op, steps.clamp(1, 64), seeds.clamp(0, 16))
        .await
        .map_err(|e| e.to_string())?;
    post(&Response::Faithful { result: Box::new(f), millis: js_sys::Date::now() - t0 });
    Ok(())
}

/// The loaded model and the last explanation, or errors saying what to do first.
fn session_and_last(what: &str) -> Result<(Rc<Session>, Rc<LastExplained>), String> {
    let s = SESSION.with(|s| s.borrow().clone()).ok_or("no model is loaded (load one first; after a GPU loss, load it again)")?;
    let last = LAST.with(|l| l.borrow().clone()).ok_or_else(|| format!("explain an image first: {what} the last explanation's input"))?;
    Ok((s, last))
}

async fn list_stored() -> Result<(), String> {
    let models = store::Store::open().await?.list().await?;
    post(&Response::Stored { models, usage: store::usage().await });
    Ok(())
}

async fn handle(req: Request, files: Vec<web_sys::File>) -> Result<(), String> {
    match req {
        Request::Inspect { source, dtype } => load::inspect(&source, dtype, &files).await,
        Request::Load { source, dtype } => {
            // The old model's buffers go before the new one's arrive.
            SESSION.with(|s| s.borrow_mut().take());
            LAST.with(|l| l.borrow_mut().take());
            let s = load::load(&source, dtype, &files).await?;
            post(&Response::Loaded {
                model: s.name.clone(),
                adapter: s.ctx.describe(),
                weight_bytes: s.model.weight_bytes,
                wasm_memory_bytes: wasm_memory_bytes(),
            });
            SESSION.with(|slot| *slot.borrow_mut() = Some(Rc::new(s)));
            if matches!(source, crate::protocol::ModelSource::Url { .. }) {
                // The storage panel shows what the load just kept; a browser without storage
                // simply has nothing to list.
                let _ = list_stored().await;
            }
            Ok(())
        }
        Request::ListStored => list_stored().await,
        Request::Faithfulness { operator, steps, seeds } => faithful(operator, steps, seeds).await,
        Request::Knockout { patches } => intervene::knockout(&patches).await,
        Request::Ablate { heads, mode } => intervene::ablate(&heads, mode).await,
        Request::Patch { image_base64, question, positions } => intervene::patch(&image_base64, &question, positions).await,
        Request::ExplainAnswer { max_tokens } => intervene::answer(max_tokens).await,
        Request::Zoom { zoom, seeds } => intervene::zoom(zoom, seeds).await,
        Request::DeleteStored { key } => {
            store::Store::open().await?.delete(&key).await?;
            list_stored().await
        }
        Request::Explain { image_base64, question, answer_prefix, target, contrast, top_k_heads, head_maps } => {
            let s = SESSION.with(|s| s.borrow().clone()).ok_or("no model is loaded (load one first; after a GPU loss, load it again)")?;
            let ask = Ask {
                question: &question,
                prefix: &answer_prefix,
                target: target.as_deref(),
                contrast: contrast.as_deref(),
                top_k_heads,
                head_maps,
            };
            explain_one(&s, &image_base64, &ask).await
        }
    }
}

/// What the page asked to explain.
struct Ask<'a> {
    question: &'a str,
    prefix: &'a str,
    target: Option<&'a str>,
    contrast: Option<&'a str>,
    top_k_heads: usize,
    head_maps: Vec<(usize, usize)>,
}

async fn explain_one(s: &Session, image_b64: &str, ask: &Ask<'_>) -> Result<(), String> {
    let (question, prefix) = (ask.question, ask.prefix);
    let t0 = js_sys::Date::now();
    post(&Response::Progress { stage: "inference".into(), done: 0, total: 1 });
    let bytes = STANDARD.decode(image_b64).map_err(|e| format!("the image was not sent intact: {e}"))?;
    let img = decode_image(&bytes, "the chosen image").map_err(|e| e.to_string())?;
    let pre = preprocess(&img, &s.processor, ResizeMode::CenterCrop).map_err(|e| e.to_string())?;
    let prompt = s.tokenizer.prompt(question, prefix).map_err(|e| e.to_string())?;
    // The CLI's rule for --target and --contrast (an id, a word, or text of one token).
    let token = |t: &str| s.tokenizer.resolve_token(t).map_err(|e| e.to_string());
    let target = ask.target.filter(|t| !t.trim().is_empty()).map(token).transpose()?;
    let contrast = ask.contrast.filter(|t| !t.trim().is_empty()).map(token).transpose()?;
    let opts = ExplainOptions {
        target,
        contrast,
        top_k_heads: ask.top_k_heads.max(1),
        head_maps: ask.head_maps.clone(),
        lens_k: 5,
        model_name: s.name.clone(),
        ..Default::default()
    };
    let mut e = explain(&s.model, &s.ctx, &prompt, &pre.pixels, &opts).await.map_err(|e| e.to_string())?;
    e.name_tokens(&s.tokenizer);
    // Maps are drawn over the part the patch grid covers (all of it for CLIP-L/336).
    let (view, c) = pre.patch_region(s.model.config.vision_tower().map_err(|e| e.to_string())?.covered_pixels());
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&view).map_err(|e| format!("encoding the crop: {e}"))?;
    let recorded = Recorded::of(&e, &s.name, question, prefix, jpeg.clone());
    e.crop = Some(llava_lens_explain::explanation::Crop { x: c.x, y: c.y, width: c.width, height: c.height });
    let reply = Response::Explained {
        explanation: Box::new(e),
        recorded: Box::new(recorded),
        millis: js_sys::Date::now() - t0,
        wasm_memory_bytes: wasm_memory_bytes(),
        split_words: s.tokenizer.split_words(question),
    };
    post(&reply);
    // The explanation and its inputs move into LAST (at 7B shapes they are not small).
    if let Response::Explained { explanation, .. } = reply {
        let last = LastExplained {
            explanation: *explanation,
            prompt,
            pixels: pre.pixels,
            question: question.into(),
            prefix: prefix.into(),
            crop_jpeg: jpeg,
            image: img,
        };
        LAST.with(|l| *l.borrow_mut() = Some(Rc::new(last)));
    }
    Ok(())
}
