//! What to ask: the gallery (generated scenes the demo model never saw in training, each
//! question one click that explains it), the visitor's own picture (file, drop or paste), the
//! question, and which answer word to explain.

use leptos::prelude::*;
use llava_lens_scenes::{COLORS, SHAPES, SceneSpec, generate};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{State, dom};

/// Gallery scenes: a seed the demo model never saw in training.
const GALLERY_SEED: u64 = 12345;
pub const GALLERY_SIZE: u64 = 6;

#[derive(Clone)]
struct GalleryItem {
    png: Vec<u8>,
    image: image::DynamicImage,
    /// (question, answer prefix) pairs.
    questions: Vec<(String, String)>,
}

fn gallery() -> Vec<GalleryItem> {
    let spec = SceneSpec::default();
    (0..GALLERY_SIZE)
        .map(|i| {
            let s = generate(GALLERY_SEED, i, &spec);
            let png = scene_png(i);
            let questions = s.questions.iter().map(|q| (q.question.clone(), q.answer_prefix.clone())).collect();
            GalleryItem { png, image: image::DynamicImage::ImageRgb8(s.image), questions }
        })
        .collect()
}

/// Gallery scene `i` as PNG bytes (activation patching's corrupted input).
pub fn scene_png(i: u64) -> Vec<u8> {
    let s = generate(GALLERY_SEED, i, &SceneSpec::default());
    let mut png = Vec::new();
    s.image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("in-memory PNG");
    png
}

/// An image the user gave (file, drop, paste): checked to decode before it replaces the current one.
fn take_image(s: State, file: Option<web_sys::File>) {
    let Some(file) = file else { return };
    wasm_bindgen_futures::spawn_local(async move {
        match dom::read_file(&file).await {
            Ok(bytes) => match image::load_from_memory(&bytes) {
                Ok(img) => {
                    s.error.set(None);
                    s.set_picture(bytes, &img);
                }
                Err(e) => s.fail(format!("{} is not an image this page can decode ({e}); PNG, JPEG, WebP, BMP and GIF work", file.name())),
            },
            Err(e) => s.fail(e),
        }
    });
}

/// Paste anywhere on the page: an image on the clipboard becomes the input.
pub fn listen_for_paste(s: State) {
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
}

/// What the bundled demo model knows: the words of its training scenes.
fn demo_knowledge() -> String {
    let shapes: Vec<&str> = SHAPES.iter().map(|s| s.name()).collect();
    let colours: Vec<&str> = COLORS.iter().map(|c| c.name).collect();
    format!(
        "This tiny demo model knows only its training scenes: {} shapes ({}) in {} colours ({}). Real Llava models load in the Model panel.",
        shapes.len(),
        shapes.join(", "),
        colours.len(),
        colours.join(", ")
    )
}

#[component]
pub fn AskPanel(s: State) -> impl IntoView {
    let items = StoredValue::new(gallery());
    let ready = move || s.model.loaded.get().is_some();
    let can_run = move || ready() && !s.run.busy.get();
    let choose = move |i: usize, q: usize| {
        items.with_value(|it| s.set_picture(it[i].png.clone(), &it[i].image));
        let (question, prefix) = items.with_value(|it| it[i].questions[q].clone());
        s.input.question.set(question);
        s.input.prefix.set(prefix);
        // One click explains: now when the model is there and free, else as soon as it is.
        if s.model.loaded.get_untracked().is_some() && !s.run.busy.get_untracked() {
            super::explain_fresh(&s);
        } else {
            s.run.queued.set(true);
        }
    };
    let thumbs = move || {
        items.with_value(|it| {
            it.iter()
                .enumerate()
                .map(|(i, item)| {
                    let src = dom::data_url(&item.png);
                    view! {
                        <button class="thumb" data-testid=format!("scene-{i}") aria-pressed=move || (s.input.scene.get() == i).to_string()
                            aria-label=format!("Scene {}", i + 1) on:click=move |_| s.input.scene.set(i)>
                            <img src=src alt="" />
                        </button>
                    }
                })
                .collect_view()
        })
    };
    let questions = move || {
        let i = s.input.scene.get();
        items.with_value(|it| {
            it[i]
                .questions
                .iter()
                .enumerate()
                .map(|(q, (text, _))| {
                    let text = text.clone();
                    view! {
                        <li><button class="q" data-testid=format!("q-{i}-{q}") aria-label=format!("Scene {}: {text}", i + 1)
                            on:click=move |_| choose(i, q)>{text.clone()}</button></li>
                    }
                })
                .collect_view()
        })
    };
    let chosen_image = move || s.input.image.get().map(|b| dom::data_url(&b));
    let is_demo = move || s.model.loaded.with(|m| m.as_deref().is_some_and(super::model::is_demo));
    view! {
        <section class="ask" aria-labelledby="ask-title">
            <h2 id="ask-title">"Ask"</h2>
            <p class="hint">"Pick a scene, then a question: it is explained at once."</p>
            <div class="thumbs" role="group" aria-label="Example scenes">{thumbs}</div>
            <ul class="questions" aria-label="Questions about the chosen scene">{questions}</ul>
            <div class="drop" data-testid="image-drop"
                on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); take_image(s, dom::files_of(ev.data_transfer().and_then(|d| d.files())).into_iter().next()); }>
                {move || chosen_image().map(|src| view! { <img class="chosen" data-testid="chosen-image" src=src alt="the picture to explain" /> })}
                <label class="file">"Your own picture"<input type="file" accept="image/*" data-testid="file" on:change=move |ev: leptos::ev::Event| {
                    let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
                    take_image(s, dom::files_of(input.files()).into_iter().next());
                } /></label>
                <span class="hint">"or drop or paste one"</span>
            </div>
            <label class="field">"Question"<input type="text" data-testid="question" prop:value=move || s.input.question.get() on:input=move |ev| s.input.question.set(event_target_value(&ev)) /></label>
            <label class="field">"The answer starts with"<input type="text" data-testid="prefix" prop:value=move || s.input.prefix.get() on:input=move |ev| s.input.prefix.set(event_target_value(&ev)) /></label>
            <div class="pair">
                <label class="field">"Explain the word"<input type="text" data-testid="target" placeholder="the answer" prop:value=move || s.input.target.get() on:input=move |ev| s.input.target.set(event_target_value(&ev)) /></label>
                <label class="field">"rather than"<input type="text" data-testid="contrast" placeholder="(optional)" prop:value=move || s.input.contrast.get() on:input=move |ev| s.input.contrast.set(event_target_value(&ev)) /></label>
            </div>
            <button class="primary" data-testid="run" on:click=move |_| super::explain_fresh(&s) disabled=move || !can_run()>
                {move || if s.run.busy.get() { "Explaining…" } else if ready() { "Explain" } else { "Waiting for the model…" }}
            </button>
            <Show when=is_demo>
                <p class="knows" data-testid="knows">{demo_knowledge()}</p>
            </Show>
        </section>
    }
}
