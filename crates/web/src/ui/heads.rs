//! The head grid: every head's score (how much its output raises the answer's log-probability)
//! as a compact heat map, layers down and heads across. It is one keyboard stop: the arrow keys
//! move a cursor between heads (the readout says the head under it), Enter or Space shows that
//! head's map. The top heads are also listed as text.

use leptos::prelude::*;

use super::state::{MapChoice, State};

/// Heads listed as text, best first.
const RANKED: usize = 5;
/// Above this many heads per layer the cells carry no numbers (too small to read).
const NUMBERED_HEADS: usize = 8;

/// Shows head (l, h)'s map: at once if the explanation has it, else after one more pass.
pub fn show_head(s: &State, l: usize, h: usize) {
    s.view.map.set(MapChoice::Head(l, h));
    s.view.head_cursor.set(Some((l, h)));
    if s.out.head_maps.get_untracked().iter().any(|m| (m.0, m.1) == (l, h)) || s.run.live.with_untracked(Option::is_none) {
        return;
    }
    if s.out.recorded.with_untracked(|r| r.as_ref().is_some_and(|r| r.best_head == (l, h))) {
        return;
    }
    // A later answer word's explanation came with its top heads' maps; the extra pass re-runs
    // the first word's input.
    if s.whatif.answer_shown.get_untracked() > 0 {
        return;
    }
    super::rerun_with_head(s, l, h);
}

#[component]
pub fn HeadGrid(s: State) -> impl IntoView {
    let r = move || s.out.recorded.get();
    // Every cell reads these two: memos of a pair, not a copy of the explanation per cell (a 7B
    // grid has 1024 cells).
    let best = Memo::new(move |_| s.out.recorded.with(|r| r.as_ref().map(|r| r.best_head)));
    let shown = Memo::new(move |_| match (s.view.map.get(), best.get()) {
        (MapChoice::Head(l, h), _) => Some((l, h)),
        (MapChoice::Paper, b) => b,
        _ => None,
    });
    let cursor = Memo::new(move |_| s.view.head_cursor.get().or_else(|| best.get()));
    let shown = move || shown.get();
    let cursor = move || cursor.get();
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let (Some((layers, heads, best)), Some((l, h))) = (
            s.out
                .recorded
                .with_untracked(|r| r.as_ref().map(|r| (r.head_scores.len(), r.head_scores.first().map_or(0, Vec::len), r.best_head))),
            cursor(),
        ) else {
            return;
        };
        let moved = match ev.key().as_str() {
            "ArrowUp" => (l.saturating_sub(1), h),
            "ArrowDown" => ((l + 1).min(layers.saturating_sub(1)), h),
            "ArrowLeft" => (l, h.saturating_sub(1)),
            "ArrowRight" => (l, (h + 1).min(heads.saturating_sub(1))),
            "Home" => best,
            "Enter" | " " => {
                ev.prevent_default();
                return show_head(&s, l, h);
            }
            _ => return,
        };
        ev.prevent_default();
        s.view.head_cursor.set(Some(moved));
    };
    let readout = move || {
        let (l, h) = cursor()?;
        let v = s.out.recorded.with(|r| r.as_ref().and_then(|r| r.head_scores.get(l)?.get(h).copied()))?;
        let state = if Some((l, h)) == shown() { "shown" } else { "Enter shows its map" };
        Some(format!("head {l}.{h}: {v:+.4} nats ({state})"))
    };
    let grid = move || {
        r().map(|r| {
            let limit = r.head_scores.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
            let heads = r.head_scores.first().map_or(0, Vec::len);
            let numbered = heads <= NUMBERED_HEADS;
            r.head_scores
                .iter()
                .enumerate()
                .map(|(l, row)| {
                    let cells = row
                        .iter()
                        .enumerate()
                        .map(|(h, &v)| {
                            let style = crate::view::cell_style(v, limit);
                            view! {
                                <td role="gridcell" id=format!("head-{l}-{h}") data-testid=format!("head-{l}-{h}")
                                    class:shown=move || shown() == Some((l, h)) class:cursor=move || cursor() == Some((l, h))
                                    aria-selected=move || (shown() == Some((l, h))).to_string()
                                    style=style title=format!("head {l}.{h}: {v:+.4} nats")
                                    on:click=move |_| show_head(&s, l, h) on:mouseenter=move |_| s.view.head_cursor.set(Some((l, h)))>
                                    // Read aloud whole; seen as the number alone (or a colour).
                                    <span class="sr-only">{format!("head {l}.{h}: {v:+.4} nats")}</span>
                                    <span aria-hidden="true">{numbered.then(|| format!("{v:+.2}"))}</span>
                                </td>
                            }
                        })
                        .collect_view();
                    view! { <tr><th scope="row">{format!("L{l}")}</th>{cells}</tr> }
                })
                .collect_view()
        })
    };
    let ranked = move || {
        r().map(|r| {
            llava_lens_explain::method::rank_heads(&r.head_scores)
                .into_iter()
                .take(RANKED)
                .map(|hs| {
                    let (l, h) = (hs.layer, hs.head);
                    view! { <li><button class="rank" on:click=move |_| show_head(&s, l, h)>{format!("{l}.{h} {:+.3}", hs.score)}</button></li> }
                })
                .collect_view()
        })
    };
    view! {
        <section class="heads" aria-labelledby="heads-title">
            <h2 id="heads-title">"Heads"</h2>
            <Show when=move || r().is_some() fallback=|| view! { <p class="hint">"Each attention head's share of the answer appears here."</p> }>
                <p class="hint">"How much each head raises the answer (nats; red raises, blue lowers). Click a head, or use the arrow keys and Enter, to see its map."</p>
                <div class="grid-wrap">
                    <table class="heads" class:compact=move || r().is_some_and(|r| r.head_scores.first().map_or(0, Vec::len) > NUMBERED_HEADS)
                        role="grid" tabindex="0" data-testid="heads" aria-label="Head scores, layers down, heads across"
                        aria-activedescendant=move || cursor().map(|(l, h)| format!("head-{l}-{h}")) on:keydown=on_key>
                        <tbody>{grid}</tbody>
                    </table>
                </div>
                <p class="readout" data-testid="head-readout" aria-live="polite">{readout}</p>
                <ol class="ranking" data-testid="ranking" aria-label="Top heads">{ranked}</ol>
            </Show>
        </section>
    }
}
