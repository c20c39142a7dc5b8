//! The model panel: where the model comes from (the bundled demo, a URL with the llava-hf
//! preset, local files or a folder, dropped or picked), its weight format, what loading will
//! take before a large download, progress bars, and the storage panel.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::State;
use super::dom::{self, CHOSEN};
use super::state::Source;
use crate::files::{Plan, hub_presets, human_bytes};
use crate::protocol::{ModelSource, Request};
use llava_lens_model::WeightDType;

/// Downloads up to this size start without asking (the demo model is 6.3 MB).
pub const ASK_ABOVE_BYTES: u64 = 200_000_000;
/// The bundled demo model, served beside the page.
pub const DEMO_MODEL: &str = "models/scenes-tiny/";

/// Whether a loaded model is the bundled demo (its URL beside the page, or its folder picked by
/// hand): the page then says what it knows and warns about words it never saw.
pub fn is_demo(name: &str) -> bool {
    name.trim_end_matches('/').rsplit('/').next() == Some("scenes-tiny")
}

/// The source the panel describes now.
pub fn source(s: &State) -> Result<ModelSource, String> {
    match s.model.source.get_untracked() {
        Source::Demo => Ok(ModelSource::Url { url: dom::absolute_url(DEMO_MODEL)? }),
        // The worker runs from a blob: URL, against which relative URLs mean nothing.
        Source::Url => Ok(ModelSource::Url { url: dom::absolute_url(s.model.url.get_untracked().trim())? }),
        Source::Files if CHOSEN.with(|c| c.borrow().is_empty()) => Err("Choose the model's files or folder first.".into()),
        Source::Files => Ok(ModelSource::Files),
    }
}

fn post(req: &Request) {
    match req {
        Request::Inspect { source: ModelSource::Files, .. } | Request::Load { source: ModelSource::Files, .. } => dom::send_with_files(req),
        _ => dom::send(req),
    }
}

/// Sends the request `make` builds from the panel's source and weight format; false (with the
/// reason shown) when the panel names no source yet. Replies arrive later, as events. It leaves
/// the error shown: the automatic check on arrival must not hide one the visitor has not read (a
/// damaged share link's); the panel's buttons clear it ([`by_click`]).
fn ask(s: &State, status: &str, make: impl FnOnce(ModelSource, WeightDType) -> Request) -> bool {
    match source(s) {
        Ok(source) => {
            let dtype = s.model.dtype.get_untracked();
            s.model.loading.set(true);
            s.model.status.set(status.into());
            post(&make(source, dtype));
            true
        }
        Err(e) => {
            s.fail(e);
            false
        }
    }
}

/// Asks what loading takes; the answer (a [`Plan`]) starts the load itself when it is small.
pub fn check(s: &State, then_load: bool) {
    s.model.link_model_host.set(None);
    if ask(s, "checking the model", |source, dtype| Request::Inspect { source, dtype }) {
        s.model.plan.set(None);
        s.model.pending_load.set(then_load);
    }
}

/// A panel button's action: the visitor acted, so the error they saw gives way.
fn by_click(s: State, action: impl Fn(&State)) -> impl Fn(leptos::ev::MouseEvent) {
    move |_| {
        s.error.set(None);
        action(&s)
    }
}

pub fn load_now(s: &State) {
    if ask(s, "loading the model", |source, dtype| Request::Load { source, dtype }) {
        s.model.loaded.set(None);
    }
}

/// What the page does with a plan: load at once when small and fitting, else wait for a click.
pub fn on_plan(s: &State, p: Plan) {
    let go = s.model.pending_load.get_untracked() && p.problem.is_none() && p.download_bytes <= ASK_ABOVE_BYTES;
    s.model.pending_load.set(false);
    s.model.loading.set(false);
    if let Some(problem) = &p.problem {
        s.fail(format!("{} cannot run on this GPU: {problem}", p.model));
    }
    s.model.status.set(format!("{}: checked", p.model));
    s.model.plan.set(Some(p));
    if go {
        load_now(s);
    }
}

/// A `?model=` link: a model on this page's own server, or one kept whole in the browser's
/// storage, loads at once; one on another server waits for the visitor's click (a link must not
/// make the page download from, and store, whatever another site names).
pub fn on_link_model(s: &State) {
    let Ok(ModelSource::Url { url }) = source(s) else {
        return check(s, true);
    };
    let base = if url.ends_with('/') { url.clone() } else { format!("{url}/") };
    let stored_whole = s.model.stored.get_untracked().iter().any(|m| m.url == base && m.complete());
    let other = dom::origin_of(&url).filter(|o| Some(o) != dom::page_origin().as_ref());
    match other {
        Some(origin) if !stored_whole => {
            s.model.status.set(format!("this link names a model on {origin}: nothing is downloaded until you press Load"));
            s.model.link_model_host.set(Some(origin));
        }
        _ => check(s, true),
    }
}

fn plan_text(p: &Plan) -> String {
    let dl = if p.download_bytes > 0 { format!("{} to download", human_bytes(p.download_bytes)) } else { "nothing to download".into() };
    format!(
        "Checked before loading: {}: {} of weight files, {dl}. On the GPU: {} of weights in {} + about {} while explaining; largest buffer {} (this adapter allows {}). Adapter: {}.",
        p.model,
        human_bytes(p.file_bytes),
        human_bytes(p.weight_bytes),
        p.dtype,
        human_bytes(p.working_bytes),
        human_bytes(p.largest_buffer),
        human_bytes(p.max_buffer),
        p.adapter
    )
}

fn bar(label: &'static str, id: &'static str, v: RwSignal<Option<(u64, u64)>>, bytes: bool) -> impl IntoView {
    view! {
        <Show when=move || v.get().is_some()>
            <div class="bar" data-testid=id>
                <span>{label}</span>
                <progress max=move || v.get().map_or(1, |x| x.1.max(1)).to_string() value=move || v.get().map_or(0, |x| x.0).to_string()></progress>
                <span>{move || v.get().map(|(d, t)| if bytes { format!("{} / {}", human_bytes(d), human_bytes(t)) } else { format!("{d} / {t}") })}</span>
            </div>
        </Show>
    }
}

#[component]
pub fn ModelPanel(s: State) -> impl IntoView {
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        // Not an attribute Leptos knows; set it on the element.
        if let Some(el) = folder_input.get() {
            let _ = el.set_attribute("webkitdirectory", "");
        }
    });
    let choose = move |files: Vec<web_sys::File>| {
        s.model.chosen.set(files.iter().map(|f| f.name()).collect());
        CHOSEN.with(|c| *c.borrow_mut() = files);
        s.model.source.set(Source::Files);
    };
    let on_files = move |ev: leptos::ev::Event| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        choose(dom::files_of(input.files()));
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        let Some(dt) = ev.data_transfer() else { return };
        // Folder entries are read from the event's own DataTransfer, started before it ends.
        let files = dom::dropped_files(&dt);
        wasm_bindgen_futures::spawn_local(async move { choose(files.await) });
    };
    view! {
        <section class="model" data-testid="model-panel">
            <label>"From "<select data-testid="source" prop:value=move || s.model.source.get().key() on:change=move |ev| s.model.source.set(Source::from_key(&event_target_value(&ev)))>
                <option value="demo">"the bundled demo model (scenes-tiny)"</option>
                <option value="url">"a URL (HF-format folder)"</option>
                <option value="files">"files on this computer"</option>
            </select></label>
            <Show when=move || s.model.source.get() == Source::Url>
                <label>"Folder URL "<input type="text" data-testid="model-url" placeholder="https://huggingface.co/llava-hf/llava-interleave-qwen-0.5b-hf/resolve/main/" prop:value=move || s.model.url.get() on:input=move |ev| s.model.url.set(event_target_value(&ev)) /></label>
                <p>"Real checkpoints on the Hugging Face Hub (the first is the smallest):"</p>
                <ul class="presets">
                    {hub_presets().into_iter().map(|p| {
                        let (url, label) = (p.url.clone(), p.label());
                        view! { <li><button data-testid="preset" on:click=move |_| { s.model.url.set(url.clone()); s.model.dtype.set(WeightDType::Q4); }>{label}</button></li> }
                    }).collect_view()}
                </ul>
            </Show>
            <div class="drop" data-testid="model-drop" on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
                <label>"Model files: "<input type="file" multiple data-testid="model-files" on:change=on_files /></label>
                <label>"or a folder: "<input type="file" node_ref=folder_input data-testid="model-folder" on:change=on_files /></label>
                <span>"(or drop the model's folder, or its config.json, tokenizer.json and safetensors files, here)"</span>
                <p class="chosen">{move || { let c = s.model.chosen.get(); if c.is_empty() || s.model.source.get() != Source::Files { String::new() } else { format!("chosen: {}", c.join(", ")) } }}</p>
            </div>
            <label>"Weights on the GPU "<select data-testid="dtype" prop:value=move || s.model.dtype.get().name() on:change=move |ev| if let Ok(d) = event_target_value(&ev).parse() { s.model.dtype.set(d) }>
                <option value="f32">"f32 (the paper's precision)"</option>
                <option value="f16">"f16"</option>
                <option value="q8">"q8"</option>
                <option value="q4">"q4 (7B in about 4 GB)"</option>
            </select></label>
            <Show when=move || s.model.link_model_host.get().is_some()>
                <p class="ask" data-testid="link-model-ask">{move || s.model.link_model_host.get().map(|h| format!("The link asks to load a model from {h}. Press Load to download it from there."))}</p>
            </Show>
            <button data-testid="check" on:click=by_click(s, |s| check(s, false)) disabled=move || s.model.loading.get()>"Check size"</button>
            <button data-testid="load" on:click=by_click(s, |s| check(s, true)) disabled=move || s.model.loading.get()>"Load"</button>
            <Show when=move || s.model.plan.get().is_some()>
                <p class="plan" data-testid="plan">{move || s.model.plan.get().map(|p| plan_text(&p))}</p>
                <Show when=move || s.model.plan.get().is_some_and(|p| p.problem.is_none()) && s.model.loaded.get().is_none()>
                    <button data-testid="confirm-load" on:click=by_click(s, load_now) disabled=move || s.model.loading.get()>{move || s.model.plan.get().map(|p| if p.download_bytes > 0 { format!("Download {} and load", human_bytes(p.download_bytes)) } else { "Load".into() })}</button>
                </Show>
            </Show>
            {bar("download", "bar-download", s.model.download, true)}
            {bar("upload to the GPU (tensors)", "bar-upload", s.model.upload, false)}
        </section>
    }
}

#[component]
pub fn StoragePanel(s: State) -> impl IntoView {
    view! {
        <section class="storage" data-testid="storage">
            <p>{move || s.model.usage.get().map(|(u, q)| format!("{} used of {} the browser allows this site.", human_bytes(u), human_bytes(q)))}</p>
            <table data-testid="stored">
                <tr><th>"model"</th><th>"size"</th><th>"state"</th><th><span class="sr-only">"action"</span></th></tr>
                {move || s.model.stored.get().into_iter().map(|m| {
                    let key = m.key.clone();
                    let state = if m.damaged {
                        format!("damaged (its manifest is unreadable; {} files): delete it to free the space", m.files.len())
                    } else if m.complete() { "complete: loads offline".to_string() } else {
                        let done = m.files.iter().filter(|f| f.complete).count();
                        format!("partial ({done} of {} files); Load resumes it", m.files.len())
                    };
                    let hashes = m.files.iter().filter_map(|f| f.sha256.as_ref().map(|h| format!("{}: sha256 {}", f.name, h))).collect::<Vec<_>>().join("\n");
                    view! {
                        <tr data-testid="stored-row">
                            <td title=hashes>{m.url.clone()}</td>
                            <td>{human_bytes(m.bytes())}</td>
                            <td>{state}</td>
                            <td><button data-testid="delete-stored" on:click=move |_| dom::send(&Request::DeleteStored { key: key.clone() })>"Delete"</button></td>
                        </tr>
                    }
                }).collect_view()}
            </table>
        </section>
    }
}
