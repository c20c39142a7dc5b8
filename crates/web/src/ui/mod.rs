//! The page. One screen holds the main loop: what to ask (a gallery scene's question, or the
//! visitor's own picture and question) on the left, the picture with the map over it in the
//! middle, the answer and the head grid on the right. The model, a batch output, the browser's
//! storage, the faithfulness curves and the exports open on demand below or above it. Every
//! model call goes to the worker; a share link renders without any model. `?embed=1` shows the
//! main screen alone (documentation pages), `?model=URL` loads that model instead of the demo,
//! `?dtype=q4` picks its weights.

mod answer;
mod ask;
mod batch;
mod colorbar;
mod dom;
mod exports;
mod faithful;
mod heads;
mod mapview;
mod model;
mod notice;
mod state;
mod whatif;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::MessageEvent;

use crate::protocol::{Request, Response};
use crate::share;
use llava_lens_model::WeightDType;
use state::{MapChoice, Source, State};

/// Heads whose maps come with every explanation (the CLI's --top-k-heads in the e2e test).
const TOP_K_HEADS: usize = 3;

/// Sends `req` (an explanation) to the worker and waits for it.
fn send_explain(s: &State, req: Request) {
    s.error.set(None);
    s.run.busy.set(true);
    s.run.progress.set(Some((0, 1)));
    dom::send(&req);
    s.run.live.set(Some(req));
}

/// The last explanation again, with head (l, h)'s map too: its own inputs, even if the visitor
/// has edited the fields since (the map must belong to the explanation on screen).
fn rerun_with_head(s: &State, l: usize, h: usize) {
    let Some(Request::Explain { image_base64, question, answer_prefix, target, contrast, top_k_heads, .. }) = s.run.live.get_untracked()
    else {
        return;
    };
    send_explain(s, Request::Explain { image_base64, question, answer_prefix, target, contrast, top_k_heads, head_maps: vec![(l, h)] });
}

/// Sends the current inputs to the worker.
fn run_explain(s: &State, head_maps: Vec<(usize, usize)>) {
    let Some(bytes) = s.input.image.get_untracked() else {
        s.fail("Choose a picture first: a gallery scene, your own file, a drop or a paste.");
        return;
    };
    let req = Request::Explain {
        image_base64: STANDARD.encode(&bytes),
        question: s.input.question.get_untracked(),
        answer_prefix: s.input.prefix.get_untracked(),
        target: Some(s.input.target.get_untracked()).filter(|t| !t.trim().is_empty()),
        contrast: Some(s.input.contrast.get_untracked()).filter(|t| !t.trim().is_empty()),
        top_k_heads: TOP_K_HEADS,
        head_maps,
    };
    s.run.sent_picture.set(s.input.picture.get_untracked());
    send_explain(s, req);
}

/// A fresh explanation of the current inputs, shown with the paper's map.
fn explain_fresh(s: &State) {
    s.view.map.set(MapChoice::Paper);
    run_explain(s, Vec::new());
}

/// A gallery question picked while the model loaded or another run ran: explained now.
fn explain_queued(s: &State) {
    if s.run.queued.get_untracked() {
        s.run.queued.set(false);
        explain_fresh(s);
    }
}

/// Shows explanation `e` (drawn as `r`) in the main view: its maps, lens tokens and JSON.
fn show_explanation(s: &State, e: &llava_lens_explain::Explanation, r: share::Recorded) {
    let o = &s.out;
    o.lens_tokens.set(e.logit_lens_text.as_ref().map(|t| t.embedding.clone()));
    o.head_maps.set(e.head_maps.iter().map(|m| (m.head.layer, m.head.head, m.patch_scores.clone())).collect());
    o.top_k.set(e.top_k_heads_map.as_ref().map(|t| (t.k, t.patch_scores.clone())));
    match e.to_json_pretty() {
        Ok(text) => o.json.set(Some(text)),
        Err(err) => s.fail(format!("the explanation could not be written as JSON: {err}")),
    }
    o.recorded.set(Some(r));
}

fn on_ready(s: &State) {
    dom::send(&Request::ListStored);
    if let Some(d) = dom::query_param("dtype").and_then(|d| d.parse::<WeightDType>().ok()) {
        s.model.dtype.set(d);
    }
    match dom::query_param("model") {
        Some(url) => {
            s.model.source.set(Source::Url);
            s.model.url.set(url);
            // Decided when the storage list arrives: a link may not make the page download
            // from another server without a click (model::on_link_model).
            s.model.link_model_pending.set(true);
        }
        None => model::check(s, true),
    }
}

fn on_response(s: &State, r: Result<Response, String>) {
    let m = &s.model;
    match r {
        Ok(Response::Ready) => on_ready(s),
        Ok(Response::Progress { stage, done, total }) => {
            let v = Some((done, total));
            match stage.as_str() {
                "download" => m.download.set(v),
                "upload" => m.upload.set(v),
                _ => s.run.progress.set(v),
            }
        }
        Ok(Response::Plan(p)) => model::on_plan(s, p),
        Ok(Response::Stored { models, usage }) => {
            m.stored.set(models);
            m.usage.set(usage);
            if m.link_model_pending.get_untracked() {
                m.link_model_pending.set(false);
                model::on_link_model(s);
            }
        }
        Ok(Response::Loaded { model, adapter, weight_bytes, wasm_memory_bytes, .. }) => {
            let hb = crate::files::human_bytes;
            // The bundled model by its name, not the address it is served from.
            let demo = dom::absolute_url(model::DEMO_MODEL).is_ok_and(|u| u == model);
            let name = if demo { "the demo model (scenes-tiny)".to_string() } else { model.clone() };
            m.status.set(format!("ready: {name}, {} of weights", hb(weight_bytes)));
            m.adapter.set(Some(format!("{adapter}; worker memory {}", hb(wasm_memory_bytes))));
            m.download.set(None);
            m.upload.set(None);
            m.loading.set(false);
            m.loaded.set(Some(model));
            if !s.run.busy.get_untracked() {
                explain_queued(s);
            }
        }
        Ok(Response::Explained { explanation: e, recorded: r, millis: ms, wasm_memory_bytes, split_words }) => {
            let o = &s.out;
            s.run.memory.set(Some(wasm_memory_bytes));
            s.run.busy.set(false);
            s.run.progress.set(None);
            o.split_words.set(split_words);
            o.original.set(s.run.sent_picture.get_untracked().zip(e.crop).map(|(p, c)| p.place(c)));
            show_explanation(s, &e, *r);
            s.run.millis.set(Some(ms));
            o.faithful.set(None);
            o.share_link.set(None);
            whatif::forget(s);
            s.run.reveal.set(true);
            explain_queued(s);
        }
        Ok(
            r @ (Response::KnockedOut { .. }
            | Response::Ablated { .. }
            | Response::Patched { .. }
            | Response::AnswerExplained { .. }
            | Response::Zoomed { .. }),
        ) => {
            s.run.busy.set(false);
            s.run.progress.set(None);
            whatif::on_response(s, r);
            explain_queued(s);
        }
        Ok(Response::Faithful { result, millis }) => {
            s.run.busy.set(false);
            s.run.progress.set(None);
            s.out.faithful_ms.set(Some(millis));
            s.out.faithful.set(Some(*result));
            explain_queued(s);
        }
        Ok(Response::DeviceLost { message }) => {
            s.run.busy.set(false);
            s.run.progress.set(None);
            m.loading.set(false);
            m.loaded.set(None);
            m.status.set("no model: the GPU was lost".into());
            s.error.set(Some(crate::notice::Notice {
                text: "The GPU stopped working for this page (another tab or the system may have reset it). Your picture, question and last explanation are kept: press Load in the Model panel to load the model again.".into(),
                detail: Some(message),
            }));
        }
        Ok(Response::Error { message }) => {
            s.run.busy.set(false);
            s.run.progress.set(None);
            m.loading.set(false);
            m.pending_load.set(false);
            s.fail(message);
        }
        Err(e) => s.fail(e),
    }
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
                s.run.busy.set(false);
                s.fail(format!("the worker stopped: {} (reload the page to start again)", ev.message()));
            });
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            on_error.forget();
            dom::WORKER.with(|w| *w.borrow_mut() = Some(worker));
        }
        Err(e) => s.fail(e),
    }
}

/// A panel that opens on demand: a `<details>` whose summary is the panel's button.
#[component]
fn Panel(id: &'static str, title: &'static str, children: Children) -> impl IntoView {
    view! {
        <details class="panel" id=format!("panel-{id}") data-testid=format!("panel-{id}")>
            <summary>{title}</summary>
            <div class="panel-body">{children()}</div>
        </details>
    }
}

#[component]
fn App() -> impl IntoView {
    let s = State::new(dom::query_param("embed").is_some_and(|v| v != "0"));

    // A share link renders at once, without the model.
    if let Some(hash) = web_sys::window().and_then(|w| w.location().hash().ok()).filter(|h| h.len() > 1) {
        match share::decode(&hash) {
            Ok(mut r) => {
                s.input.question.set(r.question.clone());
                s.input.prefix.set(r.answer_prefix.clone());
                if let Some(w) = r.whatif.take() {
                    whatif::restore(&s, w, &r.crop_jpeg);
                }
                s.out.recorded.set(Some(r));
                s.model.status.set("showing a shared explanation (recorded; no model needed)".into());
            }
            Err(e) => s.fail(e),
        }
    }
    // A recorded explanation embedded in a documentation page needs no model and no GPU.
    if !(s.embed && s.out.recorded.with_untracked(Option::is_some)) {
        start_worker(s);
    }
    ask::listen_for_paste(s);
    let full_page = dom::full_page_url();

    view! {
        <header class="top" class:embed=s.embed>
            <div class="brand">
                <h1>"llava-lens"</h1>
                <p class="lede">"The map shows which parts of the picture made the model give its answer, read from the attention head that raised the answer most."
                    <Show when=move || !s.embed>
                        " "<a class="method" href="https://arxiv.org/abs/2411.10950" target="_blank" rel="noopener">"The method (Yu & Ananiadou, 2024)"</a>
                    </Show>
                </p>
            </div>
            <p class="status" role="status" data-testid="status" title=move || s.model.adapter.get()>{move || s.model.status.get()}</p>
            <Show when=move || s.embed>
                <a class="full" href=full_page.clone() target="_blank" rel="noopener">"Open in llava-lens"</a>
            </Show>
        </header>
        <main class="page">
            <notice::NoticeView error=s.error />
            <Show when=move || !s.embed>
                <Panel id="model" title="Model"><model::ModelPanel s=s /></Panel>
            </Show>
            <div class="stage" class:embed=s.embed>
                <Show when=move || !(s.embed && s.run.live.with(Option::is_none) && s.out.recorded.with(Option::is_some))>
                    <ask::AskPanel s=s />
                </Show>
                <mapview::MapView s=s />
                <section class="side" aria-label="Answer and heads">
                    <answer::AnswerCard s=s />
                    <heads::HeadGrid s=s />
                </section>
            </div>
            <Show when=move || s.out.recorded.with(Option::is_some)>
                <Panel id="exports" title="Share and export"><exports::Exports s=s /></Panel>
            </Show>
            // A share link's "What if…" results show without the model (its buttons stay off).
            <Show when=move || !s.embed && s.out.recorded.with(Option::is_some) && (s.run.live.with(Option::is_some) || whatif::has_results(&s))>
                <Panel id="whatif" title="What if…? Knock out patches, patch activations, explain the whole answer"><whatif::WhatIfView s=s /></Panel>
            </Show>
            <Show when=move || !s.embed && s.out.recorded.with(Option::is_some) && s.run.live.with(Option::is_some)>
                <Panel id="faithful" title="How faithful is this map?"><faithful::FaithfulView s=s /></Panel>
            </Show>
            <Show when=move || !s.embed>
                <Panel id="batch" title="Browse a batch output"><batch::BatchPanel s=s /></Panel>
                <Panel id="storage" title="Stored in this browser"><model::StoragePanel s=s /></Panel>
            </Show>
        </main>
    }
}
