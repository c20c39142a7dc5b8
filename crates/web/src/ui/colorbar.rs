//! The colour bar under the map, drawn by the page (SVG text, so its labels stay readable at
//! any size and follow the theme's text colour), with the same range and units as the map.

use leptos::prelude::*;
use llava_lens_explain::render::{Palette, ramp};

/// Gradient stops per bar: enough that RdBu's and viridis's bends show.
const STOPS: usize = 11;

/// A signed value with its sign, at a precision that tells small scores apart.
pub fn signed(v: f32) -> String {
    if v == 0.0 { "0".into() } else { format!("{v:+.3}") }
}

#[component]
pub fn ColorBar(
    /// (bottom, top) of the range.
    range: Signal<Option<(f32, f32)>>,
    palette: Signal<Palette>,
    units: Signal<&'static str>,
) -> impl IntoView {
    let id = "colorbar-gradient";
    let stops = move || {
        ramp(palette.get(), STOPS)
            .into_iter()
            .enumerate()
            .map(|(i, [r, g, b])| {
                let at = format!("{:.0}%", 100.0 * i as f32 / (STOPS - 1) as f32);
                view! { <stop offset=at stop-color=format!("rgb({r},{g},{b})") /> }
            })
            .collect_view()
    };
    let meaning = move || match palette.get() {
        Palette::Signed => "red raises the answer, blue lowers it, white is no effect",
        _ => "lowest to highest",
    };
    view! {
        <figure class="colorbar" data-testid="legend">
            <svg viewBox="0 0 400 34" role="img" aria-hidden="true" focusable="false">
                <defs><linearGradient id=id x1="0" x2="1" y1="0" y2="0">{stops}</linearGradient></defs>
                <rect x="0" y="0" width="400" height="12" rx="2" fill=format!("url(#{id})") />
                <text x="0" y="30" text-anchor="start">{move || range.get().map(|(lo, _)| signed(lo)).unwrap_or_default()}</text>
                <Show when=move || palette.get() == Palette::Signed>
                    <text x="200" y="30" text-anchor="middle">"0"</text>
                </Show>
                <text x="400" y="30" text-anchor="end">{move || range.get().map(|(_, hi)| format!("{} {}", signed(hi), units.get())).unwrap_or_default()}</text>
            </svg>
            <figcaption>{move || range.get().map(|(lo, hi)| format!("Colour bar: {} to {} {} ({})", signed(lo), signed(hi), units.get(), meaning()))}</figcaption>
        </figure>
    }
}
