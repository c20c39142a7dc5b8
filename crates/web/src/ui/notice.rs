//! The page's message line ([`crate::notice`] words it).

use leptos::prelude::*;

use crate::notice::Notice;

/// The page's message line: the sentence, and the detail behind a toggle.
#[component]
pub fn NoticeView(error: RwSignal<Option<Notice>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <div class="notice" role="alert" data-testid="error">
                <p>{move || error.get().map(|n| n.text).unwrap_or_default()}</p>
                {move || error.get().and_then(|n| n.detail).map(|d| view! {
                    <details class="detail" data-testid="error-detail"><summary>"Details"</summary><pre>{d}</pre></details>
                })}
                <button class="dismiss" aria-label="Dismiss this message" on:click=move |_| error.set(None)>"×"</button>
            </div>
        </Show>
    }
}
