//! The page: model panel (demo, URL, files; storage), image input (gallery, file, drop, paste),
//! question, Run; a batch output to browse; the answer with its top-5; the patch map beside the
//! mean-attention baseline; the layers x heads grid; share link and exports. Every model call goes to the worker; a
//! share link renders without any model. `?embed=1` shows the explanation alone (documentation
//! pages), `?model=URL` loads that model instead of the demo, `?dtype=q4` picks its weights.

mod batch;
mod dom;
mod faithful;
mod model;
mod result;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use leptos::prelude::*;
use llava_lens_scenes::{SceneSpec, generate};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::MessageEvent;

use crate::files::{Plan, StoredModel};
use crate::protocol::{Request, Response};
use crate::share::{self, Recorded};
use llava_lens_explain::faithfulness::Faithfulness;

/// Gallery scenes: a seed the demo model never saw in training.
const GALLERY_SEED: u64 = 12345;
const GALLERY_SIZE: u64 = 6;
/// Heads whose maps come with every explanation (the CLI's --top-k-heads in the e2e test).
const TOP_K_HEADS: usize = 3;

/// Everything the page shows, as signals (cheap to copy into closures).
#[derive(Clone, Copy, Debug)]
pub struct State {
    status: RwSignal<String>,
    error: RwSignal<Option<String>>,
    loaded: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
    /// A check or load is under way (the model panel's buttons wait for it).
    loading: RwSignal<bool>,
    download: RwSignal<Option<(u64, u64)>>,
    upload: RwSignal<Option<(u64, u64)>>,
    inference: RwSignal<Option<(u64, u64)>>,
    plan: RwSignal<Option<Plan>>,
    pending_load: RwSignal<bool>,
    /// A `?model=` link waits for the storage list to decide whether it may load at once.
    link_model_pending: RwSignal<bool>,
    /// The other server a `?model=` link would download from, until the visitor agrees.
    link_model_host: RwSignal<Option<String>>,
    stored: RwSignal<Vec<StoredModel>>,
    usage: RwSignal<Option<(u64, u64)>>,
    source_kind: RwSignal<String>,
    model_url: RwSignal<String>,
    dtype: RwSignal<String>,
    chosen: RwSignal<Vec<String>>,
    recorded: RwSignal<Option<Recorded>>,
    explanation: RwSignal<Option<String>>,
    /// (layer, head, patch scores) of every head the last explanation mapped.
    head_maps: RwSignal<Vec<(usize, usize, Vec<f32>)>>,
    shown_head: RwSignal<Option<(usize, usize)>>,
    /// The inputs of the last explanation (a head click re-runs them for that head's map).
    live: RwSignal<Option<Request>>,
    millis: RwSignal<Option<f64>>,
    /// The worker's wasm memory after the last explanation.
    memory: RwSignal<Option<u64>>,
    /// The faithfulness curves of the last explanation and their time.
    faithful: RwSignal<Option<Faithfulness>>,
    faithful_ms: RwSignal<Option<f64>>,
    question: RwSignal<String>,
    prefix: RwSignal<String>,
    image: RwSignal<Option<Vec<u8>>>,
    opacity: RwSignal<f32>,
    crisp: RwSignal<bool>,
    palette: RwSignal<String>,
    share_link: RwSignal<Option<String>>,
    target_text: RwSignal<String>,
    contrast_text: RwSignal<String>,
    /// Logit-lens tokens per patch of the last live explanation (share links do not carry them).
    lens_tokens: RwSignal<Option<Vec<Vec<String>>>>,
    hovered: RwSignal<Option<usize>>,
    embed: bool,
}

impl State {
    fn new() -> State {
        State {
            status: RwSignal::new("starting the worker".into()),
            error: RwSignal::new(None),
            loaded: RwSignal::new(None),
            busy: RwSignal::new(false),
            loading: RwSignal::new(false),
            download: RwSignal::new(None),
            upload: RwSignal::new(None),
            inference: RwSignal::new(None),
            plan: RwSignal::new(None),
            pending_load: RwSignal::new(false),
            link_model_pending: RwSignal::new(false),
            link_model_host: RwSignal::new(None),
            stored: RwSignal::new(Vec::new()),
            usage: RwSignal::new(None),
            source_kind: RwSignal::new("demo".into()),
            model_url: RwSignal::new(String::new()),
            dtype: RwSignal::new("f32".into()),
            chosen: RwSignal::new(Vec::new()),
            recorded: RwSignal::new(None),
            explanation: RwSignal::new(None),
            head_maps: RwSignal::new(Vec::new()),
            shown_head: RwSignal::new(None),
            live: RwSignal::new(None),
            millis: RwSignal::new(None),
            memory: RwSignal::new(None),
            faithful: RwSignal::new(None),
            faithful_ms: RwSignal::new(None),
            question: RwSignal::new(String::new()),
            prefix: RwSignal::new(String::new()),
            image: RwSignal::new(None),
            opacity: RwSignal::new(0.5),
            crisp: RwSignal::new(true),
            palette: RwSignal::new("signed".into()),
            share_link: RwSignal::new(None),
            target_text: RwSignal::new(String::new()),
            contrast_text: RwSignal::new(String::new()),
            lens_tokens: RwSignal::new(None),
            hovered: RwSignal::new(None),
            embed: dom::query_param("embed").is_some_and(|v| v != "0"),
        }
    }
}

/// Sends the current inputs to the worker, with extra heads to map.
fn run_explain(s: &State, head_maps: Vec<(usize, usize)>) {
    let Some(bytes) = s.image.get_untracked() else {
        s.error.set(Some("choose an image first (a gallery scene, your own file, a drop or a paste)".into()));
        return;
    };
    let req = Request::Explain {
        image_base64: STANDARD.encode(bytes),
        question: s.question.get_untracked(),
        answer_prefix: s.prefix.get_untracked(),
        target: Some(s.target_text.get_untracked()).filter(|t| !t.trim().is_empty()),
        contrast: Some(s.contrast_text.get_untracked()).filter(|t| !t.trim().is_empty()),
        top_k_heads: TOP_K_HEADS,
        head_maps,
    };
    s.error.set(None);
    s.busy.set(true);
    dom::send(&req);
    s.live.set(Some(req));
}

fn on_response(s: &State, r: Result<Response, String>) {
    match r {
        Ok(Response::Ready) => {
            dom::send(&Request::ListStored);
            if let Some(d) = dom::query_param("dtype").filter(|d| ["f32", "f16", "q8", "q4"].contains(&d.as_str())) {
                s.dtype.set(d);
            }
            match dom::query_param("model") {
                Some(url) => {
                    s.source_kind.set("url".into());
                    s.model_url.set(url);
                    // Decided when the storage list arrives: a link may not make the page
                    // download from another server without a click (model::on_link_model).
                    s.link_model_pending.set(true);
                }
                None => model::check(s, true),
            }
        }
        Ok(Response::Progress { stage, done, total }) => {
            let v = Some((done, total));
            match stage.as_str() {
                "download" => s.download.set(v),
                "upload" => s.upload.set(v),
                _ => s.inference.set(v),
            }
        }
        Ok(Response::Plan(p)) => model::on_plan(s, p),
        Ok(Response::Stored { models, usage }) => {
            s.stored.set(models);
            s.usage.set(usage);
            if s.link_model_pending.get_untracked() {
                s.link_model_pending.set(false);
                model::on_link_model(s);
            }
        }
        Ok(Response::Loaded { model, adapter, weight_bytes, wasm_memory_bytes, .. }) => {
            let hb = crate::files::human_bytes;
            s.status.set(format!("ready: {model} on {adapter}, {} of weights (worker memory {})", hb(weight_bytes), hb(wasm_memory_bytes)));
            s.download.set(None);
            s.upload.set(None);
            s.loading.set(false);
            s.loaded.set(Some(model));
        }
        Ok(Response::Explained { explanation: e, recorded: r, millis: ms, wasm_memory_bytes }) => {
            s.memory.set(Some(wasm_memory_bytes));
            s.busy.set(false);
            s.inference.set(None);
            s.lens_tokens.set(e.logit_lens_text.as_ref().map(|t| t.embedding.clone()));
            s.head_maps.set(e.head_maps.iter().map(|m| (m.head.layer, m.head.head, m.patch_scores.clone())).collect());
            match e.to_json_pretty() {
                Ok(text) => s.explanation.set(Some(text)),
                Err(err) => s.error.set(Some(format!("the explanation could not be written as JSON: {err}"))),
            }
            s.recorded.set(Some(*r));
            s.millis.set(Some(ms));
            s.faithful.set(None);
            s.share_link.set(None);
        }
        Ok(Response::Faithful { result, millis }) => {
            s.busy.set(false);
            s.inference.set(None);
            s.faithful_ms.set(Some(millis));
            s.faithful.set(Some(*result));
        }
        Ok(Response::DeviceLost { message }) => {
            s.busy.set(false);
            s.loading.set(false);
            s.loaded.set(None);
            s.inference.set(None);
            s.status.set("no model: the GPU was lost".into());
            s.error.set(Some(format!("{message}. Your inputs and the last explanation are kept; press Load to load the model again.")));
        }
        Ok(Response::Error { message }) => {
            s.busy.set(false);
            s.loading.set(false);
            s.pending_load.set(false);
            s.inference.set(None);
            s.error.set(Some(message));
        }
        Err(e) => s.error.set(Some(e)),
    }
}

#[derive(Clone)]
struct GalleryItem {
    index: u64,
    png: Vec<u8>,
    questions: Vec<(String, String)>,
}

fn gallery() -> Vec<GalleryItem> {
    let spec = SceneSpec::default();
    (0..GALLERY_SIZE)
        .map(|i| {
            let s = generate(GALLERY_SEED, i, &spec);
            let mut png = Vec::new();
            s.image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("in-memory PNG");
            let questions = s.questions.iter().map(|q| (q.question.clone(), q.answer_prefix.clone())).collect();
            GalleryItem { index: i, png, questions }
        })
        .collect()
}

pub fn start() {
    console_error_panic_hook::set_once();
    mount_to_body(App);
}

fn start_worker(s: State) {
    match dom::spawn_worker() {
        Ok(worker) => {
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let Some(text) = ev.data().as_string() else { return };
                on_response(&s, Response::from_json(&text));
            });
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            on_message.forget();
            let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |ev: web_sys::ErrorEvent| {
                s.busy.set(false);
                s.error.set(Some(format!("the worker stopped: {} (reload the page to start again)", ev.message())));
            });
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            on_error.forget();
            dom::WORKER.with(|w| *w.borrow_mut() = Some(worker));
        }
        Err(e) => s.error.set(Some(e)),
    }
}

/// An image the user gave (file, drop, paste): checked to decode before it replaces the current one.
fn take_image(s: State, file: Option<web_sys::File>) {
    let Some(file) = file else { return };
    wasm_bindgen_futures::spawn_local(async move {
        match dom::read_file(&file).await {
            Ok(bytes) => match image::load_from_memory(&bytes) {
                Ok(_) => {
                    s.error.set(None);
                    s.image.set(Some(bytes));
                }
                Err(e) => s
                    .error
                    .set(Some(format!("{} is not an image this page can decode ({e}); PNG, JPEG, WebP, BMP and GIF work", file.name()))),
            },
            Err(e) => s.error.set(Some(e)),
        }
    });
}

#[component]
fn App() -> impl IntoView {
    let s = State::new();
    let items = gallery();

    // A share link renders at once, without the model.
    if let Some(hash) = web_sys::window().and_then(|w| w.location().hash().ok()).filter(|h| h.len() > 1) {
        match share::decode(&hash) {
            Ok(r) => {
                s.question.set(r.question.clone());
                s.prefix.set(r.answer_prefix.clone());
                s.recorded.set(Some(r));
                s.status.set("showing a shared explanation (recorded; no model needed)".into());
            }
            Err(e) => s.error.set(Some(e)),
        }
    }
    // A recorded explanation embedded in a documentation page needs no model and no GPU.
    if !(s.embed && s.recorded.get_untracked().is_some()) {
        start_worker(s);
    }
    // Paste anywhere on the page: an image on the clipboard becomes the input.
    let on_paste = Closure::<dyn FnMut(web_sys::ClipboardEvent)>::new(move |ev: web_sys::ClipboardEvent| {
        let files = dom::files_of(ev.clipboard_data().and_then(|d| d.files()));
        if let Some(f) = files.into_iter().find(|f| f.type_().starts_with("image/")) {
            ev.prevent_default();
            take_image(s, Some(f));
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.add_event_listener_with_callback("paste", on_paste.as_ref().unchecked_ref());
    }
    on_paste.forget();

    let choose = {
        let items = items.clone();
        move |i: usize, q: usize| {
            let it = &items[i];
            s.image.set(Some(it.png.clone()));
            let (qq, pp) = it.questions[q].clone();
            s.question.set(qq);
            s.prefix.set(pp);
        }
    };
    let gallery_view = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let choose = choose.clone();
            let src = dom::data_url(&it.png);
            let qs = it
                .questions
                .iter()
                .enumerate()
                .map(|(q, (text, _))| {
                    let choose = choose.clone();
                    let text = text.clone();
                    view! { <button class="q" data-testid=format!("q-{i}-{q}") on:click=move |_| choose(i, q)>{text}</button> }
                })
                .collect_view();
            view! {
                <figure class="scene" data-testid=format!("scene-{}", it.index)>
                    <img src=src alt=format!("generated scene {}", it.index) />
                    <figcaption>{qs}</figcaption>
                </figure>
            }
        })
        .collect_view();
    let chosen_image = move || s.image.get().map(|b| format!("data:image;base64,{}", STANDARD.encode(b)));

    view! {
        <header class:embed=s.embed>
            <h1>"llava-lens"</h1>
            <Show when=move || !s.embed><p class="tag">"Which image patches made Llava answer? Yu & Ananiadou (2024), on your GPU, in this page."</p></Show>
            <p class="status" data-testid="status">{move || s.status.get()}</p>
            <Show when=move || s.error.get().is_some()>
                <p class="error" role="alert" data-testid="error">{move || s.error.get().unwrap_or_default()}</p>
            </Show>
        </header>
        <main>
            <Show when=move || !s.embed>
                <model::ModelPanel s=s />
            </Show>
            <Show when=move || !(s.embed && s.live.get().is_none() && s.recorded.get().is_some())>
                <section class="input">
                    <h2>"Image"</h2>
                    <div class="gallery">{gallery_view.clone()}</div>
                    <div class="drop" data-testid="image-drop"
                        on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                        on:drop=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); take_image(s, dom::files_of(ev.data_transfer().and_then(|d| d.files())).into_iter().next()); }>
                        <label>"Or your own image: "<input type="file" accept="image/*" data-testid="file" on:change=move |ev: leptos::ev::Event| {
                            let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
                            take_image(s, dom::files_of(input.files()).into_iter().next());
                        } /></label>
                        <span>"(or drop one here, or paste it)"</span>
                        {move || chosen_image().map(|src| view! { <img class="chosen" data-testid="chosen-image" src=src alt="the image to explain" /> })}
                    </div>
                    <label>"Question "<input type="text" data-testid="question" prop:value=move || s.question.get() on:input=move |ev| s.question.set(event_target_value(&ev)) /></label>
                    <label>"Answer starts with "<input type="text" data-testid="prefix" prop:value=move || s.prefix.get() on:input=move |ev| s.prefix.set(event_target_value(&ev)) /></label>
                    <label>"Explain the token "<input type="text" data-testid="target" placeholder="the model's answer" prop:value=move || s.target_text.get() on:input=move |ev| s.target_text.set(event_target_value(&ev)) /></label>
                    <label>"rather than "<input type="text" data-testid="contrast" placeholder="(optional)" prop:value=move || s.contrast_text.get() on:input=move |ev| s.contrast_text.set(event_target_value(&ev)) /></label>
                    <button data-testid="run" on:click=move |_| { s.shown_head.set(None); run_explain(&s, Vec::new()) } disabled=move || s.busy.get() || s.loaded.get().is_none()>
                        {move || if s.busy.get() { "Explaining..." } else { "Run" }}
                    </button>
                </section>
            </Show>
            <Show when=move || !s.embed>
                <batch::BatchPanel s=s />
            </Show>
            <Show when=move || s.recorded.get().is_some()>
                <result::ResultView s=s />
            </Show>
            <Show when=move || !s.embed && s.recorded.get().is_some() && s.live.get().is_some()>
                <faithful::FaithfulView s=s />
            </Show>
            <Show when=move || !s.embed>
                <model::StoragePanel s=s />
            </Show>
        </main>
    }
}
