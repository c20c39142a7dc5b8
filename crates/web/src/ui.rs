//! The page: gallery and image input, question, Run; the answer with its top-5; the paper's
//! patch map beside the mean-attention baseline; the layers x heads grid; share link and JSON
//! export. Every model call goes to the worker; a share link renders without any model.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use leptos::prelude::*;
use llava_lens_explain::render::{Palette, RenderOptions, Upsample, render};
use llava_lens_scenes::{SceneSpec, generate};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker};

use crate::protocol::{Request, Response};
use crate::share::{self, Recorded};

/// The bundled demo model, served beside the page.
const DEMO_MODEL: &str = "models/scenes-tiny/";
/// Gallery scenes: a seed the demo model never saw in training.
const GALLERY_SEED: u64 = 12345;
const GALLERY_SIZE: u64 = 6;

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

fn send(req: &Request) {
    WORKER.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            let _ = w.post_message(&JsValue::from_str(&req.to_json()));
        }
    });
}

/// The worker script is wasm-bindgen's no-modules output (Trunk's worker pipeline); a small
/// classic script boots it from the page's own directory.
fn spawn_worker() -> Result<Worker, String> {
    let href = web_sys::window().ok_or("no window")?.location().href().map_err(|_| "no location")?;
    let base = href.split(['#', '?']).next().unwrap_or("").rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_default();
    let boot =
        format!(r#"importScripts("{base}/llava-lens-worker.js");wasm_bindgen({{module_or_path:"{base}/llava-lens-worker_bg.wasm"}});"#);
    let parts = js_sys::Array::of1(&JsValue::from_str(&boot));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    Worker::new(&url).map_err(|e| format!("could not start the worker: {e:?}"))
}

/// Saves `url` under `name` through a temporary link (the browser's download).
fn download_url(url: &str, name: &str) -> Result<(), String> {
    let doc = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = doc.create_element("a").map_err(|e| format!("{e:?}"))?.unchecked_into();
    a.set_href(url);
    a.set_download(name);
    a.click();
    Ok(())
}

/// Saves `text` as a file: a Blob URL, downloaded, then released.
fn download_text(text: &str, name: &str, mime: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    // Not revoked: revoking right after the click can cancel the download, and one small Blob
    // per click is cheap.
    download_url(&url, name)
}

/// `relative` resolved against the page's address.
fn absolute_url(relative: &str) -> Result<String, String> {
    let href = web_sys::window().ok_or("no window")?.location().href().map_err(|_| "the page has no address")?;
    web_sys::Url::new_with_base(relative, &href).map(|u| u.href()).map_err(|_| format!("{relative:?} is not a URL relative to {href}"))
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

fn data_url(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", STANDARD.encode(png))
}

/// Draw `values` over the recorded crop into `canvas` (map plus colour bar).
fn draw(canvas: &web_sys::HtmlCanvasElement, r: &Recorded, values: &[f32], opts: &RenderOptions) -> Result<(), String> {
    let crop = image::load_from_memory(&r.crop_jpeg).map_err(|e| format!("the recorded image is damaged: {e}"))?.to_rgb8();
    let (img, _legend) = render(&crop, values, r.grid, opts);
    let (w, h) = img.dimensions();
    let rgba: Vec<u8> = img.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2], 255]).collect();
    canvas.set_width(w);
    canvas.set_height(h);
    let ctx: web_sys::CanvasRenderingContext2d =
        canvas.get_context("2d").map_err(|e| format!("{e:?}"))?.ok_or("no 2d context")?.unchecked_into();
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(wasm_bindgen::Clamped(&rgba), w, h).map_err(|e| format!("{e:?}"))?;
    ctx.put_image_data(&data, 0.0, 0.0).map_err(|e| format!("{e:?}"))
}

pub fn start() {
    console_error_panic_hook::set_once();
    mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let status = RwSignal::new(String::from("starting the worker"));
    let progress = RwSignal::new((String::new(), 0u64, 0u64));
    let error = RwSignal::new(None::<String>);
    let loaded = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let recorded = RwSignal::new(None::<Recorded>);
    let explanation = RwSignal::new(None::<String>);
    let millis = RwSignal::new(None::<f64>);
    let question = RwSignal::new(String::new());
    let prefix = RwSignal::new(String::new());
    let image = RwSignal::new(None::<Vec<u8>>);
    let opacity = RwSignal::new(0.5f32);
    let crisp = RwSignal::new(true);
    let share_link = RwSignal::new(None::<String>);
    let target_text = RwSignal::new(String::new());
    let contrast_text = RwSignal::new(String::new());
    // Logit-lens tokens per patch of the last live explanation (share links do not carry them).
    let lens_tokens = RwSignal::new(None::<Vec<Vec<String>>>);
    let hovered = RwSignal::new(None::<usize>);
    let items = gallery();

    // A share link renders at once, without the model.
    if let Some(hash) = web_sys::window().and_then(|w| w.location().hash().ok()).filter(|h| h.len() > 1) {
        match share::decode(&hash) {
            Ok(r) => {
                question.set(r.question.clone());
                prefix.set(r.answer_prefix.clone());
                recorded.set(Some(r));
                status.set("showing a shared explanation (recorded; no model needed)".into());
            }
            Err(e) => error.set(Some(e)),
        }
    }

    match spawn_worker() {
        Ok(worker) => {
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let Some(text) = ev.data().as_string() else { return };
                match Response::from_json(&text) {
                    Ok(Response::Ready) => {
                        status.set("loading the demo model".into());
                        // The worker runs from a blob: URL, against which relative URLs mean nothing.
                        match absolute_url(DEMO_MODEL) {
                            Ok(url) => send(&Request::Load { base_url: url, dtype: "f32".into() }),
                            Err(e) => error.set(Some(e)),
                        }
                    }
                    Ok(Response::Progress { stage, done, total }) => progress.set((stage, done, total)),
                    Ok(Response::Loaded { model, adapter, weight_bytes, .. }) => {
                        status.set(format!("ready: {model} on {adapter}, {:.1} MB of weights", weight_bytes as f64 / 1e6));
                        loaded.set(Some(model));
                    }
                    Ok(Response::Explained { explanation: e, recorded: r, millis: ms }) => {
                        busy.set(false);
                        lens_tokens.set(serde_json::from_value(e["logit_lens_text"]["embedding"].clone()).ok());
                        explanation.set(Some(serde_json::to_string_pretty(&e).unwrap_or_default()));
                        recorded.set(Some(*r));
                        millis.set(Some(ms));
                        share_link.set(None);
                    }
                    Ok(Response::Error { message }) => {
                        busy.set(false);
                        error.set(Some(message));
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            on_message.forget();
            let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |ev: web_sys::ErrorEvent| {
                busy.set(false);
                error.set(Some(format!("the worker stopped: {} (reload the page to start again)", ev.message())));
            });
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            on_error.forget();
            WORKER.with(|w| *w.borrow_mut() = Some(worker));
        }
        Err(e) => error.set(Some(e)),
    }

    let choose = {
        let items = items.clone();
        move |i: usize, q: usize| {
            let it = &items[i];
            image.set(Some(it.png.clone()));
            let (qq, pp) = it.questions[q].clone();
            question.set(qq);
            prefix.set(pp);
        }
    };
    let run = move |_| {
        let Some(bytes) = image.get_untracked() else {
            error.set(Some("choose an image first (a gallery scene or your own file)".into()));
            return;
        };
        error.set(None);
        busy.set(true);
        send(&Request::Explain {
            image_base64: STANDARD.encode(bytes),
            question: question.get_untracked(),
            answer_prefix: prefix.get_untracked(),
            target: Some(target_text.get_untracked()).filter(|t| !t.trim().is_empty()),
            contrast: Some(contrast_text.get_untracked()).filter(|t| !t.trim().is_empty()),
            top_k_heads: 3,
        });
    };
    let on_file = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().expect("input event target").unchecked_into();
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        wasm_bindgen_futures::spawn_local(async move {
            match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(buf) => image.set(Some(js_sys::Uint8Array::new(&buf).to_vec())),
                Err(e) => error.set(Some(format!("could not read the file: {e:?}"))),
            }
        });
    };

    let map_canvas = NodeRef::<leptos::html::Canvas>::new();
    let base_canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        let (Some(r), op, crisp) = (recorded.get(), opacity.get(), crisp.get()) else { return };
        let upsample = if crisp { Upsample::Crisp } else { Upsample::Smooth };
        let signed = RenderOptions { upsample, palette: Palette::Signed, opacity: op, outline_top: 3, units: "nats" };
        let seq = RenderOptions { upsample, palette: Palette::Viridis, opacity: op, outline_top: 3, units: "attention" };
        if let (Some(c), Some(b)) = (map_canvas.get(), base_canvas.get()) {
            if let Err(e) = draw(&c, &r, &r.patch_scores, &signed).and_then(|_| draw(&b, &r, &r.baseline_map, &seq)) {
                error.set(Some(e));
            }
        }
    });

    let gallery_view = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let choose = choose.clone();
            let src = data_url(&it.png);
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

    view! {
        <header>
            <h1>"llava-lens"</h1>
            <p class="tag">"Which image patches made Llava answer? Yu & Ananiadou (2024), on your GPU, in this page."</p>
            <p class="status" data-testid="status">{move || status.get()}</p>
            <p class="progress" data-testid="progress">{move || { let (s, d, t) = progress.get(); if t > 0 { format!("{s}: {d}/{t}") } else { s } }}</p>
            <Show when=move || error.get().is_some()>
                <p class="error" role="alert" data-testid="error">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </header>
        <main>
            <section class="input">
                <h2>"Image"</h2>
                <div class="gallery">{gallery_view}</div>
                <label>"Or your own image: "<input type="file" accept="image/*" data-testid="file" on:change=on_file /></label>
                <label>"Question "<input type="text" data-testid="question" prop:value=move || question.get() on:input=move |ev| question.set(event_target_value(&ev)) /></label>
                <label>"Answer starts with "<input type="text" data-testid="prefix" prop:value=move || prefix.get() on:input=move |ev| prefix.set(event_target_value(&ev)) /></label>
                <label>"Explain the token "<input type="text" data-testid="target" placeholder="the model's answer" prop:value=move || target_text.get() on:input=move |ev| target_text.set(event_target_value(&ev)) /></label>
                <label>"rather than "<input type="text" data-testid="contrast" placeholder="(optional)" prop:value=move || contrast_text.get() on:input=move |ev| contrast_text.set(event_target_value(&ev)) /></label>
                <button data-testid="run" on:click=run disabled=move || busy.get() || loaded.get().is_none()>
                    {move || if busy.get() { "Explaining..." } else { "Run" }}
                </button>
            </section>
            <Show when=move || recorded.get().is_some()>
                <section class="result" data-testid="result">
                    <h2>"Answer"</h2>
                    <p data-testid="answer">{move || recorded.get().map(|r| format!("{} {}", r.answer_prefix, r.top.first().map(|t| t.0.trim_start_matches('▁')).unwrap_or("?"))).unwrap_or_default()}</p>
                    <p data-testid="explained">{move || recorded.get().map(|r| match &r.contrast {
                        Some(c) => format!("explaining \"{}\" rather than \"{}\" (scores of the logit difference)", r.target.trim_start_matches('▁'), c.trim_start_matches('▁')),
                        None => format!("explaining \"{}\" (log-probability {:.3})", r.target.trim_start_matches('▁'), r.target_log_prob),
                    })}</p>
                    <ol class="top5">{move || recorded.get().map(|r| r.top.iter().map(|(t, p)| view! { <li>{format!("{} {:.3}", t.trim_start_matches('▁'), p)}</li> }).collect_view())}</ol>
                    <p class="timing">{move || millis.get().map(|m| format!("explained in {m:.0} ms"))}</p>
                    <div class="maps">
                        <figure><canvas node_ref=map_canvas data-testid="map"
                            on:mousemove=move |ev: leptos::ev::MouseEvent| {
                                let (Some(c), Some(r)) = (map_canvas.get_untracked(), recorded.get_untracked()) else { return };
                                // The drawing is the crop (canvas height square) plus the colour bar; CSS may scale it.
                                // (clientHeight is 0 for an inline canvas; the bounding box is what is drawn.)
                                let scale = c.height() as f64 / c.get_bounding_client_rect().height().max(1.0);
                                hovered.set(crate::view::patch_at(f64::from(ev.offset_x()) * scale, f64::from(ev.offset_y()) * scale, c.height() as f64, r.grid));
                            }
                            on:mouseleave=move |_| hovered.set(None)></canvas><figcaption>{move || recorded.get().map(|r| match &r.contrast {
                            Some(_) => format!("best head {}.{}: logit-difference increase per patch (nats)", r.best_head.0, r.best_head.1),
                            None => format!("best head {}.{}: log-probability increase per patch (nats)", r.best_head.0, r.best_head.1),
                        })}</figcaption></figure>
                        <figure><canvas node_ref=base_canvas data-testid="baseline"></canvas><figcaption>"mean attention (baseline)"</figcaption></figure>
                    </div>
                    <p class="lens" data-testid="lens">{move || match (hovered.get(), recorded.get()) {
                        (Some(p), Some(r)) => {
                            let score = r.patch_scores.get(p).copied().unwrap_or(0.0);
                            let tokens = lens_tokens.get().and_then(|l| l.get(p).cloned()).map(|t| t.iter().map(|s| s.trim_start_matches('▁').to_string()).collect::<Vec<_>>().join(", "));
                            format!("patch row {}, column {}: {score:+.4} nats; logit lens of its image token: {}", p / r.grid, p % r.grid, tokens.unwrap_or_else(|| "not recorded in share links".into()))
                        }
                        _ => "hover the map: a patch's score and what the unembedding reads from its image token".into(),
                    }}</p>
                    <label>"Opacity "<input type="range" min="0" max="1" step="0.05" prop:value=move || opacity.get().to_string() on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.5)) /></label>
                    <label><input type="checkbox" prop:checked=move || crisp.get() on:change=move |ev| crisp.set(event_target_checked(&ev)) />" crisp patch grid"</label>
                    <h2>"Heads"</h2>
                    <table class="heads" data-testid="heads">{move || recorded.get().map(|r| {
                        let limit = r.head_scores.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
                        r.head_scores.iter().enumerate().map(|(l, row)| view! {
                            <tr><th>{format!("layer {l}")}</th>{row.iter().enumerate().map(|(h, v)| view! {
                                <td style=format!("background:{};color:{}", crate::view::score_color(*v, limit), if limit > 0.0 && v.abs() > 0.6 * limit { "white" } else { "black" }) title=format!("head {l}.{h}: {v:+.4} nats")>{format!("{v:+.2}")}</td>
                            }).collect_view()}</tr>
                        }).collect_view()
                    })}</table>
                    <button data-testid="share" on:click=move |_| {
                        if let Some(r) = recorded.get_untracked() {
                            let frag = share::encode(&r);
                            if let Some(w) = web_sys::window() {
                                let _ = w.location().set_hash(&frag);
                                share_link.set(w.location().href().ok());
                            }
                        }
                    }>"Share link"</button>
                    <button data-testid="download-json" on:click=move |_| {
                        if let Some(text) = explanation.get_untracked() {
                            if let Err(e) = download_text(&text, "llava-lens-explanation.json", "application/json") {
                                error.set(Some(e));
                            }
                        }
                    }>"Download JSON"</button>
                    <button data-testid="download-png" on:click=move |_| {
                        let url = map_canvas.get_untracked().map(|c| c.to_data_url_with_type("image/png"));
                        match url {
                            Some(Ok(u)) => if let Err(e) = download_url(&u, "llava-lens-map.png") { error.set(Some(e)) },
                            _ => error.set(Some("the map has not been drawn yet".into())),
                        }
                    }>"Download PNG"</button>
                    <p class="share" data-testid="share-link">{move || share_link.get()}</p>
                    <details><summary>"Explanation JSON (the CLI's schema)"</summary><pre data-testid="json">{move || explanation.get()}</pre></details>
                </section>
            </Show>
        </main>
    }
}
