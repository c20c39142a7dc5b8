//! Share and export: a link that carries the explanation (no server sees it: it lives in the
//! URL's fragment), the explanation as the CLI's JSON, and the drawn map as a PNG.

use leptos::prelude::*;

use super::dom;
use super::state::State;
use crate::share;

#[component]
pub fn Exports(s: State) -> impl IntoView {
    let share_now = move |_| {
        if let Some(mut r) = s.out.recorded.get_untracked() {
            // The link carries the "What if…" results shown with the explanation.
            r.whatif = super::whatif::shared(&s);
            let frag = share::encode(&r);
            if let Some(w) = web_sys::window() {
                let _ = w.location().set_hash(&frag);
                s.out.share_link.set(w.location().href().ok());
            }
        }
    };
    let download_json = move |_| {
        if let Some(text) = s.out.json.get_untracked() {
            if let Err(e) = dom::download_text(&text, "llava-lens-explanation.json", "application/json") {
                s.fail(e);
            }
        }
    };
    let download_png = move |_| {
        let canvas = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("[data-testid=map]").ok().flatten())
            .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlCanvasElement>(e).ok());
        match canvas.map(|c| c.to_data_url_with_type("image/png")) {
            Some(Ok(u)) => {
                if let Err(e) = dom::download_url(&u, "llava-lens-map.png") {
                    s.fail(e)
                }
            }
            _ => s.fail("The map has not been drawn yet."),
        }
    };
    view! {
        <div class="exports">
            <button data-testid="share" on:click=share_now>"Make a share link"</button>
            <button data-testid="download-json" on:click=download_json>"Download JSON"</button>
            <button data-testid="download-png" on:click=download_png>"Download the map (PNG)"</button>
        </div>
        <p class="share" data-testid="share-link">{move || s.out.share_link.get()}</p>
        <Show when=move || !s.embed && s.out.json.get().is_some()>
            <details><summary>"The explanation as JSON (the CLI's schema)"</summary><pre data-testid="json">{move || s.out.json.get()}</pre></details>
        </Show>
    }
}
