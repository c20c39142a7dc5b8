//! Browsing a `llava-lens batch` output: the JSONL file and its images (a picked folder, or the
//! image files), a list filtered by tag and sorted by a score, and each line shown with the
//! explanation's views (crates/web/src/batch.rs has the logic). No model is needed: the
//! numbers are the batch's.

use std::cell::RefCell;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::state::MapChoice;
use super::{State, dom};
use crate::batch::{self, Entry, Order};

thread_local! {
    /// The picked image files (`File` objects stay on the page's thread).
    static IMAGES: RefCell<Vec<web_sys::File>> = const { RefCell::new(Vec::new()) };
}

/// A picked file's path inside the picked folder (its name for single files).
fn path_of(f: &web_sys::File) -> String {
    js_sys::Reflect::get(f, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| f.name())
}

/// Shows line `i`: its image's view through the recorded crop, then every view of the page.
fn show(s: State, entries: RwSignal<Vec<Entry>>, selected: RwSignal<Option<usize>>, i: usize) {
    let Some(entry) = entries.with_untracked(|e| e.get(i).cloned()) else { return };
    let e = match &entry.outcome {
        Ok(e) => e.clone(),
        Err(problem) => {
            s.fail(format!("{}: the batch recorded an error: {problem}", entry.id));
            return;
        }
    };
    let (Some(image), Some(crop)) = (entry.example.image.clone(), e.crop) else {
        s.fail(format!("{}: a text-only example has no image map to show", entry.id));
        return;
    };
    let paths: Vec<String> = IMAGES.with(|f| f.borrow().iter().map(path_of).collect());
    let Some(at) = batch::find_image(&paths, &image) else {
        s.fail(format!(
            "{}: its image {image:?} is not among the {} picked files; pick the folder the examples file's images are in",
            entry.id,
            paths.len()
        ));
        return;
    };
    let Some(file) = IMAGES.with(|f| f.borrow().get(at).cloned()) else { return };
    wasm_bindgen_futures::spawn_local(async move {
        let view = match dom::read_file(&file).await.and_then(|bytes| batch::model_view(&bytes, &crop, 336)) {
            Ok(v) => v,
            Err(err) => return s.fail(format!("{}: {}: {err}", entry.id, file.name())),
        };
        let Some(r) = batch::recorded(&entry, view) else { return };
        let o = &s.out;
        s.error.set(None);
        s.run.live.set(None);
        s.run.millis.set(None);
        s.view.map.set(MapChoice::Paper);
        s.view.head_cursor.set(None);
        o.share_link.set(None);
        // The batch keeps the model's view only: drawn as the map's picture.
        o.original.set(None);
        o.split_words.set(Vec::new());
        o.lens_tokens.set(e.logit_lens_text.as_ref().map(|t| t.embedding.clone()));
        o.head_maps.set(e.head_maps.iter().map(|m| (m.head.layer, m.head.head, m.patch_scores.clone())).collect());
        o.top_k.set(e.top_k_heads_map.as_ref().map(|t| (t.k, t.patch_scores.clone())));
        o.json.set(e.to_json_pretty().ok());
        s.input.question.set(r.question.clone());
        s.input.prefix.set(r.answer_prefix.clone());
        o.recorded.set(Some(r));
        selected.set(Some(i));
    });
}

#[component]
pub fn BatchPanel(s: State) -> impl IntoView {
    let entries = RwSignal::new(Vec::<Entry>::new());
    let name = RwSignal::new(String::new());
    let images = RwSignal::new(0usize);
    let tag = RwSignal::new(String::new());
    let order = RwSignal::new("file".to_string());
    let selected = RwSignal::new(None::<usize>);
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(el) = folder_input.get() {
            let _ = el.set_attribute("webkitdirectory", "");
        }
    });
    let on_output = move |ev: leptos::ev::Event| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let Some(file) = dom::files_of(input.files()).into_iter().next() else { return };
        wasm_bindgen_futures::spawn_local(async move {
            let parsed = dom::read_file(&file)
                .await
                .and_then(|b| String::from_utf8(b).map_err(|_| format!("{} is not text", file.name())))
                .and_then(|t| batch::parse(&t, &file.name()));
            match parsed {
                Ok(e) => {
                    s.error.set(None);
                    name.set(file.name());
                    tag.set(String::new());
                    selected.set(None);
                    entries.set(e);
                }
                Err(e) => s.fail(e),
            }
        });
    };
    let on_images = move |ev: leptos::ev::Event| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let files: Vec<web_sys::File> = dom::files_of(input.files()).into_iter().filter(|f| !f.name().ends_with(".jsonl")).collect();
        images.set(files.len());
        IMAGES.with(|f| *f.borrow_mut() = files);
    };
    let shown = move || {
        let t = tag.get();
        entries.with(|e| batch::shown(e, Some(t.as_str()).filter(|t| !t.is_empty()), Order::parse(&order.get())))
    };
    let summary = move || {
        let n = entries.with(Vec::len);
        (n > 0).then(|| {
            let errors = entries.with(|e| e.iter().filter(|x| x.outcome.is_err()).count());
            format!("{}: {n} lines ({errors} errors), {} shown; {} image files picked", name.get(), shown().len(), images.get())
        })
    };
    view! {
        <section class="batch" data-testid="batch-panel">
            <p class="hint">"Browse the lines of a "<code>"llava-lens batch"</code>" run with the same views: its JSONL file and the images it names (no model needed)."</p>
            <label>"Output (JSONL) "<input type="file" accept=".jsonl,.json,application/json" data-testid="batch-file" on:change=on_output /></label>
            <label>"Images: the folder "<input type="file" node_ref=folder_input data-testid="batch-folder" on:change=on_images /></label>
            <label>" or the files "<input type="file" multiple accept="image/*" data-testid="batch-images" on:change=on_images /></label>
            <p data-testid="batch-summary">{summary}</p>
            <Show when=move || !entries.with(Vec::is_empty)>
                <label>"Tag "<select data-testid="batch-tag" prop:value=move || tag.get() on:change=move |ev| tag.set(event_target_value(&ev))>
                    <option value="">"all"</option>
                    {move || entries.with(|e| batch::tags(e)).into_iter().map(|t| view! { <option value=t.clone()>{t.clone()}</option> }).collect_view()}
                </select></label>
                <label>" Sort "<select data-testid="batch-order" prop:value=move || order.get() on:change=move |ev| order.set(event_target_value(&ev))>
                    <option value="file">"as in the file"</option>
                    <option value="best">"best head's score, highest first"</option>
                    <option value="best-low">"best head's score, lowest first"</option>
                    <option value="wrong">"wrong answers first"</option>
                </select></label>
                <table class="batch-list" data-testid="batch-list">
                    <tr><th>"id"</th><th>"tags"</th><th>"answer"</th><th>"best head"</th><th>"score (nats)"</th></tr>
                    {move || shown().into_iter().map(|i| {
                        let row = entries.with(|e| e.get(i).map(Entry::row))?;
                        Some(view! {
                            <tr class:selected=move || selected.get() == Some(i) class:error=row.failed data-testid=format!("batch-row-{}", row.id)
                                on:click=move |_| show(s, entries, selected, i)>
                                <td><button class="link" on:click=move |ev| { ev.stop_propagation(); show(s, entries, selected, i) }>{row.id.clone()}</button></td>
                                <td>{row.tags}</td><td>{row.answer}</td><td>{row.head}</td><td>{row.score}</td>
                            </tr>
                        })
                    }).collect_view()}
                </table>
            </Show>
        </section>
    }
}
