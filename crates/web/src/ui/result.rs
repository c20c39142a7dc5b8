//! The explanation: answer and top 5, the map of the paper's best head (or any head clicked in
//! the grid) beside the mean-attention baseline, hover lens, colour map, exports, share link.

use leptos::prelude::*;
use llava_lens_explain::render::{Palette, RenderOptions, Upsample};

use super::State;
use super::dom;
use crate::share;

/// The marks a vocabulary puts on a word-initial piece: SentencePiece's "▁" (LLaMA) and byte-level
/// BPE's "Ġ" (Qwen); pieces are shown without them.
const WORD_START: [char; 2] = ['▁', 'Ġ'];

/// A map on screen: the clicked head (None: the paper's best head) and its patch scores.
type Shown = (Option<(usize, usize)>, Vec<f32>);

/// The map shown: the clicked head's when the explanation has it, else the paper's.
fn shown_map(s: &State) -> Option<Shown> {
    let r = s.recorded.get()?;
    if let Some(h) = s.shown_head.get() {
        if let Some(m) = s.head_maps.get().into_iter().find(|m| (m.0, m.1) == h) {
            return Some((Some(h), m.2));
        }
    }
    Some((None, r.patch_scores))
}

fn palette(name: &str) -> Palette {
    match name {
        "viridis" => Palette::Viridis,
        "gray" => Palette::Gray,
        _ => Palette::Signed,
    }
}

/// Clicking a head: its map if the explanation has it, else one more pass that computes it.
fn show_head(s: &State, l: usize, h: usize) {
    s.shown_head.set(Some((l, h)));
    if s.head_maps.get_untracked().iter().any(|m| (m.0, m.1) == (l, h)) || s.live.get_untracked().is_none() {
        return;
    }
    super::run_explain(s, vec![(l, h)]);
}

#[component]
pub fn ResultView(s: State) -> impl IntoView {
    let map_canvas = NodeRef::<leptos::html::Canvas>::new();
    let base_canvas = NodeRef::<leptos::html::Canvas>::new();
    let legend = RwSignal::new(None::<(f32, f32)>);
    Effect::new(move |_| {
        let (Some(r), Some((_, values)), op, crisp, pal) =
            (s.recorded.get(), shown_map(&s), s.opacity.get(), s.crisp.get(), s.palette.get())
        else {
            return;
        };
        let upsample = if crisp { Upsample::Crisp } else { Upsample::Smooth };
        let map = RenderOptions { upsample, palette: palette(&pal), opacity: op, outline_top: 3, units: "nats" };
        let seq = RenderOptions { upsample, palette: Palette::Viridis, opacity: op, outline_top: 3, units: "attention" };
        if let (Some(c), Some(b)) = (map_canvas.get(), base_canvas.get()) {
            match dom::draw(&c, &r, &values, &map).and_then(|l| dom::draw(&b, &r, &r.baseline_map, &seq).map(|_| l)) {
                Ok(l) => legend.set(Some(l)),
                Err(e) => s.error.set(Some(e)),
            }
        }
    });
    let caption = move || {
        let r = s.recorded.get()?;
        let what = if r.contrast.is_some() { "logit-difference increase" } else { "log-probability increase" };
        Some(match shown_map(&s)?.0 {
            Some((l, h)) if (l, h) != r.best_head => format!("head {l}.{h} (clicked): {what} per patch (nats)"),
            _ => format!("best head {}.{}: {what} per patch (nats)", r.best_head.0, r.best_head.1),
        })
    };
    view! {
        <section class="result" data-testid="result">
            <h2>"Answer"</h2>
            <p data-testid="answer">{move || s.recorded.get().map(|r| format!("{} {}", r.answer_prefix, r.top.first().map(|t| t.0.trim_start_matches(WORD_START)).unwrap_or("?"))).unwrap_or_default()}</p>
            <p data-testid="explained">{move || s.recorded.get().map(|r| match &r.contrast {
                Some(c) => format!("explaining \"{}\" rather than \"{}\" (scores of the logit difference)", r.target.trim_start_matches(WORD_START), c.trim_start_matches(WORD_START)),
                None => format!("explaining \"{}\" (log-probability {:.3})", r.target.trim_start_matches(WORD_START), r.target_log_prob),
            })}</p>
            <ol class="top5" data-testid="top5">{move || s.recorded.get().map(|r| r.top.iter().map(|(t, p)| {
                let word = t.trim_start_matches(WORD_START).to_string();
                let pick = word.clone();
                view! { <li>{format!("{word} {p:.3} ")}
                    <Show when=move || s.live.get().is_some()>
                        <button class="pick" title="explain this token instead" on:click={let pick = pick.clone(); move |_| { s.target_text.set(pick.clone()); s.shown_head.set(None); super::run_explain(&s, Vec::new()) }}>"explain this"</button>
                        <button class="pick" title="explain the answer rather than this token" on:click={let pick = pick.clone(); move |_| { s.contrast_text.set(pick.clone()); s.shown_head.set(None); super::run_explain(&s, Vec::new()) }}>"rather than this"</button>
                    </Show>
                </li> }
            }).collect_view())}</ol>
            <p class="timing" data-testid="timing">{move || s.millis.get().map(|m| format!("explained in {m:.0} ms; worker memory {}", s.memory.get().map(crate::files::human_bytes).unwrap_or_default()))}</p>
            <div class="maps">
                <figure><canvas node_ref=map_canvas data-testid="map"
                    on:mousemove=move |ev: leptos::ev::MouseEvent| {
                        let (Some(c), Some(r)) = (map_canvas.get_untracked(), s.recorded.get_untracked()) else { return };
                        // The drawing is the crop (canvas height square) plus the colour bar; CSS may scale it.
                        // (clientHeight is 0 for an inline canvas; the bounding box is what is drawn.)
                        let scale = c.height() as f64 / c.get_bounding_client_rect().height().max(1.0);
                        s.hovered.set(crate::view::patch_at(f64::from(ev.offset_x()) * scale, f64::from(ev.offset_y()) * scale, c.height() as f64, r.grid));
                    }
                    on:mouseleave=move |_| s.hovered.set(None)></canvas>
                    <figcaption data-testid="map-caption">{caption}</figcaption>
                    <p class="legend" data-testid="legend">{move || legend.get().map(|(lo, hi)| {
                        let scale = if s.palette.get() == "signed" { "diverging around 0: red raises the answer, blue lowers it" } else { "lowest to highest" };
                        format!("colour bar: {lo:+.4} to {hi:+.4} nats ({scale})")
                    })}</p>
                </figure>
                <figure><canvas node_ref=base_canvas data-testid="baseline"></canvas><figcaption>"mean attention of the last position (baseline, share of attention)"</figcaption></figure>
            </div>
            <p class="lens" data-testid="lens">{move || match (s.hovered.get(), s.recorded.get(), shown_map(&s)) {
                (Some(p), Some(r), Some((_, values))) => {
                    let score = values.get(p).copied().unwrap_or(0.0);
                    let tokens = s.lens_tokens.get().and_then(|l| l.get(p).cloned()).map(|t| t.iter().map(|s| s.trim_start_matches(WORD_START).to_string()).collect::<Vec<_>>().join(", "));
                    format!("patch row {}, column {}: {score:+.4} nats; logit lens of its image token: {}", p / r.grid, p % r.grid, tokens.unwrap_or_else(|| "not recorded in share links".into()))
                }
                _ => "hover the map: a patch's score and what the unembedding reads from its image token".into(),
            }}</p>
            <label>"Colour map "<select data-testid="palette" prop:value=move || s.palette.get() on:change=move |ev| s.palette.set(event_target_value(&ev))>
                <option value="signed">"diverging RdBu (signed scores)"</option>
                <option value="viridis">"viridis"</option>
                <option value="gray">"gray (the authors' notebook)"</option>
            </select></label>
            <label>"Opacity "<input type="range" min="0" max="1" step="0.05" prop:value=move || s.opacity.get().to_string() on:input=move |ev| s.opacity.set(event_target_value(&ev).parse().unwrap_or(0.5)) /></label>
            <label><input type="checkbox" prop:checked=move || s.crisp.get() on:change=move |ev| s.crisp.set(event_target_checked(&ev)) />" crisp patch grid"</label>
            <h2>"Heads"</h2>
            <p class="ranking" data-testid="ranking">"Ranked: "{move || s.recorded.get().map(|r| {
                llava_lens_explain::method::rank_heads(&r.head_scores).into_iter().take(10).map(|hs| (hs.layer, hs.head, hs.score)).map(|(l, h, v)| view! {
                    <button class="rank" on:click=move |_| show_head(&s, l, h)>{format!("{l}.{h} {v:+.3}")}</button>
                }).collect_view()
            })}</p>
            <p class="hint">"Each cell: how much that head's output raises the answer's log-probability (nats). Click a head to see its map."</p>
            <table class="heads" data-testid="heads">{move || s.recorded.get().map(|r| {
                let limit = r.head_scores.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
                let shown = s.shown_head.get().unwrap_or(r.best_head);
                r.head_scores.iter().enumerate().map(|(l, row)| view! {
                    <tr><th>{format!("layer {l}")}</th>{row.iter().enumerate().map(|(h, v)| view! {
                        <td class:shown=move || shown == (l, h) data-testid=format!("head-{l}-{h}") on:click=move |_| show_head(&s, l, h)
                            style=format!("background:{};color:{}", crate::view::score_color(*v, limit), if limit > 0.0 && v.abs() > 0.6 * limit { "white" } else { "black" }) title=format!("head {l}.{h}: {v:+.4} nats")>{format!("{v:+.2}")}</td>
                    }).collect_view()}</tr>
                }).collect_view()
            })}</table>
            <button data-testid="share" on:click=move |_| {
                if let Some(r) = s.recorded.get_untracked() {
                    let frag = share::encode(&r);
                    if let Some(w) = web_sys::window() {
                        let _ = w.location().set_hash(&frag);
                        s.share_link.set(w.location().href().ok());
                    }
                }
            }>"Share link"</button>
            <button data-testid="download-json" on:click=move |_| {
                if let Some(text) = s.explanation.get_untracked() {
                    if let Err(e) = dom::download_text(&text, "llava-lens-explanation.json", "application/json") {
                        s.error.set(Some(e));
                    }
                }
            }>"Download JSON"</button>
            <button data-testid="download-png" on:click=move |_| {
                let url = map_canvas.get_untracked().map(|c| c.to_data_url_with_type("image/png"));
                match url {
                    Some(Ok(u)) => if let Err(e) = dom::download_url(&u, "llava-lens-map.png") { s.error.set(Some(e)) },
                    _ => s.error.set(Some("the map has not been drawn yet".into())),
                }
            }>"Download PNG"</button>
            <p class="share" data-testid="share-link">{move || s.share_link.get()}</p>
            <Show when=move || !s.embed>
                <details><summary>"Explanation JSON (the CLI's schema)"</summary><pre data-testid="json">{move || s.explanation.get()}</pre></details>
            </Show>
        </section>
    }
}
