//! "What if…": interventions on the last explanation's input (docs/INTERVENTIONS.md).
//!
//! - Knock out patches: brush over the map (or take the map's top 5) and the answer is computed
//!   again with the text after the picture unable to attend to them.
//! - Activation patching: another gallery scene with the same question is run, and each of this
//!   input's activations in turn is copied into it; the grids say how much of this input's lead
//!   of its answer over the other's each one restores, per layer and head, per layer and image
//!   patch (a map per layer), and per layer and text position.
//! - The whole answer: every generated word explained with the words before it; a click on a word
//!   shows its explanation in the main view.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use leptos::prelude::*;
use llava_lens_explain::intervene::Outcome as Dist;
use llava_lens_explain::intervene::ablation::Ablation;
use wasm_bindgen::JsCast;

use super::mapview::WORD_START;
use super::state::{AnswerView, PatchView, State, ZoomView};
use super::{ask, dom};
use crate::protocol::{PatchPositions, Request, Response};
use crate::share::whatif::{SharedAnswer, SharedKnockout, SharedPatching, SharedWhatIf, SharedZoom};
use crate::view::{cell_style, score_color, top_patches};

/// Patches the "top of the map" button knocks out.
const TOP_KNOCKOUT: usize = 5;
/// Zoom and re-ask: the window's side as a share of the picture's, and random windows compared.
const ZOOM: f32 = 0.5;
const ZOOM_SEEDS: usize = 3;
/// Answer tokens generated and explained.
const ANSWER_TOKENS: usize = 4;

fn word(piece: &str) -> String {
    piece.trim_start_matches(WORD_START).to_string()
}

/// An intervention can run: the model answered this input here (not a share link) and is idle.
fn can_run(s: &State) -> bool {
    !s.run.busy.get() && s.run.live.with(Option::is_some)
}

/// The time a result took, or that it came recorded in a link.
fn took(millis: f64) -> String {
    if millis.is_finite() { format!("Computed in {millis:.0} ms.") } else { "Recorded in the share link.".into() }
}

/// Whether any "What if…" result is shown (a share link's included).
pub fn has_results(s: &State) -> bool {
    let w = &s.whatif;
    w.knockout.with(Option::is_some)
        || w.ablation.with(Option::is_some)
        || w.patching.with(Option::is_some)
        || w.zoomed.with(Option::is_some)
        || w.answer.with(Option::is_some)
}

/// The results shown now, as a share link carries them (None when there are none). Answer words'
/// records drop their picture: the link's own serves them all.
pub fn shared(s: &State) -> Option<SharedWhatIf> {
    let w = &s.whatif;
    let out = SharedWhatIf {
        knockout: w.knockout.get_untracked().map(|(patches, before, after, _)| SharedKnockout { patches, before, after }),
        ablation: w.ablation.get_untracked().map(|(a, _)| a),
        patching: w.patching.get_untracked().map(|p| SharedPatching {
            patching: p.patching,
            labels: p.labels,
            target: p.target,
            contrast: p.contrast,
        }),
        zoom: w.zoomed.get_untracked().map(|z| SharedZoom {
            before: z.before,
            by_map: z.by_map,
            random: z.random,
            window_jpeg: z.window_jpeg,
        }),
        answer: w.answer.get_untracked().map(|a| SharedAnswer {
            tokens: a.tokens,
            recorded: a.recorded.into_iter().map(|r| crate::share::Recorded { crop_jpeg: Vec::new(), whatif: None, ..r }).collect(),
            shown: w.answer_shown.get_untracked(),
        }),
    };
    (!out.is_empty()).then_some(out)
}

/// Shows a link's results (checked when the link was decoded); they carry no times, and with
/// no model here the panel's buttons stay off.
pub fn restore(s: &State, shared: SharedWhatIf, crop_jpeg: &[u8]) {
    let w = &s.whatif;
    if let Some(k) = shared.knockout {
        w.brushed.set(k.patches.clone());
        w.knockout.set(Some((k.patches, k.before, k.after, f64::NAN)));
    }
    w.ablation.set(shared.ablation.map(|a| (a, f64::NAN)));
    w.patching.set(shared.patching.map(|p| PatchView {
        patching: p.patching,
        labels: p.labels,
        target: p.target,
        contrast: p.contrast,
        millis: f64::NAN,
    }));
    w.zoomed.set(shared.zoom.map(|z| ZoomView {
        before: z.before,
        by_map: z.by_map,
        random: z.random,
        window_jpeg: z.window_jpeg,
        millis: f64::NAN,
    }));
    if let Some(a) = shared.answer {
        w.answer_shown.set(a.shown);
        let recorded = a.recorded.into_iter().map(|r| crate::share::Recorded { crop_jpeg: crop_jpeg.to_vec(), ..r }).collect();
        w.answer.set(Some(AnswerView { tokens: a.tokens, explanations: Vec::new(), recorded, millis: f64::NAN }));
    }
}

/// Sends an intervention request; the page waits for it like an explanation.
fn send(s: &State, req: Request) {
    s.error.set(None);
    s.run.busy.set(true);
    s.run.progress.set(Some((0, 1)));
    dom::send(&req);
}

/// A new explanation: the interventions of the last one no longer apply.
pub fn forget(s: &State) {
    let w = &s.whatif;
    w.brushed.set(Vec::new());
    w.knockout.set(None);
    w.ablation.set(None);
    w.patching.set(None);
    w.answer.set(None);
    w.zoomed.set(None);
    w.answer_shown.set(0);
}

/// Knocks out the brushed patches (none: the knockout is cleared).
pub fn knock_out(s: &State) {
    let patches = s.whatif.brushed.get_untracked();
    if patches.is_empty() {
        s.whatif.knockout.set(None);
        return;
    }
    send(s, Request::Knockout { patches });
}

/// Adds patch `p` to the brushed set (a stroke passing over it).
pub fn brush(s: &State, p: usize) {
    if !s.whatif.brushed.with_untracked(|b| b.contains(&p)) {
        s.whatif.brushed.update(|b| b.push(p));
    }
}

/// Adds or removes patch `p` (the keyboard's Space on the map's cursor), and knocks out the set.
pub fn toggle(s: &State, p: usize) {
    s.whatif.brushed.update(|b| match b.iter().position(|&q| q == p) {
        Some(i) => {
            b.remove(i);
        }
        None => b.push(p),
    });
    knock_out(s);
}

pub fn on_response(s: &State, r: Response) {
    let w = &s.whatif;
    match r {
        Response::KnockedOut { patches, before, after, millis } => w.knockout.set(Some((patches, *before, *after, millis))),
        Response::Ablated { ablation, millis } => w.ablation.set(Some((*ablation, millis))),
        Response::Patched { patching, labels, target, contrast, millis } => {
            w.patching.set(Some(PatchView { patching: *patching, labels, target, contrast, millis }))
        }
        Response::Zoomed { before, by_map, random, window_jpeg, millis } => {
            w.zoomed.set(Some(ZoomView { before: *before, by_map: *by_map, random, window_jpeg, millis }))
        }
        Response::AnswerExplained { tokens, explanations, recorded, millis } => {
            w.answer_shown.set(0);
            w.answer.set(Some(AnswerView { tokens, explanations, recorded, millis }));
        }
        _ => {}
    }
}

/// Shows answer token `i`'s explanation in the main view.
fn show_token(s: &State, i: usize) {
    let Some(a) = s.whatif.answer.get_untracked() else { return };
    let Some(r) = a.recorded.get(i) else { return };
    s.whatif.answer_shown.set(i);
    s.view.map.set(super::state::MapChoice::Paper);
    match a.explanations.get(i) {
        Some(e) => super::show_explanation(s, e, r.clone()),
        // A share link's words: what was recorded is all there is to draw.
        None => s.out.recorded.set(Some(r.clone())),
    }
}

fn dist_line(d: &Dist) -> String {
    d.top.iter().map(|t| format!("{} {:.3}", word(t.text.as_deref().unwrap_or("?")), t.log_prob.exp())).collect::<Vec<_>>().join(", ")
}

#[component]
fn Knockout(s: State) -> impl IntoView {
    let w = s.whatif;
    let idle = move || can_run(&s);
    let top5 = move |_| {
        let Some(scores) = s.out.recorded.with_untracked(|r| r.as_ref().map(|r| r.patch_scores.clone())) else { return };
        w.brushed.set(top_patches(&scores, TOP_KNOCKOUT));
        knock_out(&s);
    };
    let grid = move || s.out.recorded.with(|r| r.as_ref().map_or(1, |r| r.grid.max(1)));
    let count = move || {
        let b = w.brushed.get();
        let g = grid();
        if b.is_empty() {
            "No patch knocked out.".to_string()
        } else {
            let mut sorted = b.clone();
            sorted.sort_unstable();
            let list: Vec<String> = sorted.iter().map(|p| format!("{},{}", p / g, p % g)).collect();
            format!("{} patches knocked out (row,column): {}", b.len(), list.join("; "))
        }
    };
    let result = move || {
        w.knockout.get().map(|(patches, before, after, ms)| {
            let t = word(before.target.text.as_deref().unwrap_or("?"));
            let (lp_before, lp_after) = (before.target.log_prob.to_string(), after.target.log_prob.to_string());
            let listed = patches.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
            view! {
                <p class="said" data-testid="knockout-p" data-before=lp_before data-after=lp_after data-patches=listed>
                    {format!("p({t}): {:.3} → {:.3}", before.prob(), after.prob())}
                </p>
                <p data-testid="knockout-top">{format!("Now: {}", dist_line(&after))}</p>
                <p class="hint">{format!("Before: {}. {}", dist_line(&before), took(ms))}</p>
            }
        })
    };
    view! {
        <section class="whatif-part" aria-labelledby="knockout-title">
            <h3 id="knockout-title">"Knock out patches"</h3>
            <p class="hint">"Brush over the picture: the words after it can no longer attend to those patches, and the answer is computed again with the rest of the model untouched. Or focus the map and press Space on a patch."</p>
            <div class="controls">
                <button class="toggle" data-testid="brush" aria-pressed=move || w.brushing.get().to_string()
                    disabled=move || s.run.live.with(Option::is_none) on:click=move |_| w.brushing.update(|b| *b = !*b)>"Brush on the map"</button>
                <button data-testid="knockout-top5" disabled=move || !idle() on:click=top5>{format!("Top {TOP_KNOCKOUT} of the map")}</button>
                <button data-testid="knockout-clear" disabled=move || !idle() on:click=move |_| { w.brushed.set(Vec::new()); w.knockout.set(None); }>"Clear"</button>
            </div>
            <p data-testid="knockout-count" aria-live="polite">{count}</p>
            <div aria-live="polite">{result}</div>
        </section>
    }
}

/// Draws layer `layer`'s recovered fractions over the image patches on a small canvas.
fn draw_layer(canvas: &web_sys::HtmlCanvasElement, cells: &[Option<f32>], grid: usize, limit: f32) -> Result<(), String> {
    const CELL: usize = 10;
    let side = (grid * CELL) as u32;
    canvas.set_width(side);
    canvas.set_height(side);
    let ctx: web_sys::CanvasRenderingContext2d =
        canvas.get_context("2d").map_err(|e| format!("{e:?}"))?.ok_or("no 2d context")?.unchecked_into();
    for (p, v) in cells.iter().enumerate() {
        let colour = v.map_or_else(|| "#dddddd".to_string(), |v| score_color(v, limit));
        ctx.set_fill_style_str(&colour);
        ctx.fill_rect(((p % grid) * CELL) as f64, ((p / grid) * CELL) as f64, CELL as f64, CELL as f64);
    }
    Ok(())
}

#[component]
fn LayerMap(layer: usize, cells: Vec<Option<f32>>, grid: usize, limit: f32) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let best = cells.iter().enumerate().filter_map(|(p, v)| Some((p, (*v)?))).max_by(|a, b| a.1.total_cmp(&b.1));
    let label = match best {
        Some((p, v)) => format!("layer {layer}: patch row {}, column {} restores the most ({v:+.3})", p / grid, p % grid),
        None => format!("layer {layer}: no image patch was patched"),
    };
    Effect::new(move |_| {
        if let Some(c) = canvas.get() {
            let _ = draw_layer(&c, &cells, grid, limit);
        }
    });
    view! {
        <figure class="layer-map">
            <canvas node_ref=canvas data-testid=format!("patch-layer-{layer}") role="img" aria-label=label.clone()></canvas>
            <figcaption>{format!("L{layer}")}</figcaption>
        </figure>
    }
}

#[component]
fn Patching(s: State) -> impl IntoView {
    let w = s.whatif;
    let idle = move || can_run(&s);
    let run = move |_| {
        let png = ask::scene_png(w.patch_scene.get_untracked() as u64);
        let question = s.out.recorded.with_untracked(|r| r.as_ref().map(|r| r.question.clone())).unwrap_or_default();
        send(&s, Request::Patch { image_base64: STANDARD.encode(png), question, positions: w.patch_positions.get_untracked() });
    };
    let scenes = move || {
        (0..ask::GALLERY_SIZE as usize).map(|i| view! { <option value=i.to_string()>{format!("Scene {}", i + 1)}</option> }).collect_view()
    };
    let result = move || {
        w.patching.get().map(|pv: PatchView| {
            let p = &pv.patching;
            let limit = p.resid.iter().chain(&p.heads).flatten().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let grid = (p.image_tokens as f64).sqrt().round() as usize;
            let heads = p
                .heads
                .iter()
                .enumerate()
                .map(|(l, row)| {
                    let cells = row
                        .iter()
                        .enumerate()
                        .map(|(h, &v)| {
                            view! { <td style=cell_style(v, limit) data-testid=format!("patch-head-{l}-{h}") title=format!("head {l}.{h}: {v:+.4}")>{format!("{v:+.2}")}</td> }
                        })
                        .collect_view();
                    view! { <tr><th scope="row">{format!("L{l}")}</th>{cells}</tr> }
                })
                .collect_view();
            let maps = (p.image_tokens > 0 && grid * grid == p.image_tokens).then(|| {
                (0..p.resid.len()).map(|l| view! { <LayerMap layer=l cells=p.patch_map(l) grid=grid limit=limit /> }).collect_view()
            });
            let text: Vec<(usize, usize)> = p
                .positions
                .iter()
                .enumerate()
                .filter(|(_, q)| !(p.image_offset..p.image_offset + p.image_tokens).contains(q))
                .map(|(i, &q)| (i, q))
                .collect();
            let text_table = (!text.is_empty()).then(|| {
                let head = text.iter().map(|&(_, q)| view! { <th scope="col">{word(pv.labels.get(q).map_or("", String::as_str))}</th> }).collect_view();
                let rows = p
                    .resid
                    .iter()
                    .enumerate()
                    .map(|(l, row)| {
                        let cells = text
                            .iter()
                            .map(|&(i, q)| view! { <td style=cell_style(row[i], limit) title=format!("layer {l}, position {q}: {:+.4}", row[i])>{format!("{:+.2}", row[i])}</td> })
                            .collect_view();
                        view! { <tr><th scope="row">{format!("L{l}")}</th>{cells}</tr> }
                    })
                    .collect_view();
                view! {
                    <div class="grid-wrap"><table class="patch-text" data-testid="patch-text" aria-label="Text positions: layers down, tokens across">
                        <thead><tr><td></td>{head}</tr></thead><tbody>{rows}</tbody>
                    </table></div>
                }
            });
            // Every number, for the end-to-end test and for copying (the grids round them).
            let numbers = serde_json::to_string(&pv.patching).unwrap_or_default();
            view! {
                <p class="said" data-testid="patch-summary" data-json=numbers>{format!(
                    "This input answers \"{}\" and the other \"{}\": a cell of 1 restores this input's whole lead of \"{}\" over \"{}\", 0 none of it. {} runs. {}",
                    word(pv.patching.clean.top.first().and_then(|t| t.text.as_deref()).unwrap_or("?")),
                    word(pv.patching.corrupted.top.first().and_then(|t| t.text.as_deref()).unwrap_or("?")),
                    word(&pv.target), word(&pv.contrast), pv.patching.runs, took(pv.millis)
                )}</p>
                <h4>"Each head's output at the last position"</h4>
                <div class="grid-wrap"><table class="heads" data-testid="patch-heads" aria-label="Heads: layers down, heads across"><tbody>{heads}</tbody></table></div>
                {maps.map(|m| view! { <h4>"The residual stream at each image patch, per layer"</h4><div class="layer-maps" data-testid="patch-maps">{m}</div> })}
                {text_table.map(|t| view! { <h4>"The residual stream at each text position"</h4>{t} })}
            }
        })
    };
    view! {
        <section class="whatif-part" aria-labelledby="patching-title">
            <h3 id="patching-title">"Activation patching"</h3>
            <p class="hint">"Ask the same question about another scene, then copy one activation at a time from this input into that run: the cells that restore this answer are where the difference is carried."</p>
            <div class="controls">
                <label>"Other input"<select data-testid="patch-scene" prop:value=move || w.patch_scene.get().to_string()
                    on:change=move |ev| w.patch_scene.set(event_target_value(&ev).parse().unwrap_or(1))>{scenes}</select></label>
                <label>"Positions"<select data-testid="patch-positions" prop:value=move || w.patch_positions.get().name()
                    on:change=move |ev| w.patch_positions.set(event_target_value(&ev).parse().unwrap_or(PatchPositions::Image))>
                    <option value="image">"image patches"</option>
                    <option value="text">"text"</option>
                    <option value="all">"all"</option>
                </select></label>
                <button data-testid="patch-run" disabled=move || !idle() on:click=run>"Patch"</button>
            </div>
            <div data-testid="patch-result">{result}</div>
        </section>
    }
}

#[component]
fn WholeAnswer(s: State) -> impl IntoView {
    let w = s.whatif;
    let idle = move || can_run(&s);
    let tokens = move || {
        w.answer.get().map(|a| {
            a.tokens
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let p = a.recorded.get(i).map_or(0.0, |r| r.target_log_prob.exp());
                    view! {
                        <button class="token" data-testid=format!("answer-token-{i}") aria-pressed=move || (w.answer_shown.get() == i).to_string()
                            aria-label=format!("answer word {}: {} (p {p:.3}): show its explanation", i + 1, word(t))
                            on:click=move |_| show_token(&s, i)>{word(t)}</button>
                    }
                })
                .collect_view()
        })
    };
    view! {
        <section class="whatif-part" aria-labelledby="answer-all-title">
            <h3 id="answer-all-title">"The whole answer"</h3>
            <p class="hint">"The paper explains the first word of the answer. Generate the rest and explain each word with the words before it; click a word to see its map and heads."</p>
            <button data-testid="answer-run" disabled=move || !idle() on:click=move |_| send(&s, Request::ExplainAnswer { max_tokens: ANSWER_TOKENS })>
                {format!("Explain every word (up to {ANSWER_TOKENS})")}</button>
            <p class="tokens" data-testid="answer-tokens" role="group" aria-label="Answer words">{tokens}</p>
        </section>
    }
}

/// Ablates the head under the head grid's cursor (the best head when there is none).
#[component]
fn Ablate(s: State) -> impl IntoView {
    let w = s.whatif;
    let idle = move || can_run(&s);
    let head = move || s.view.head_cursor.get().or_else(|| s.out.recorded.with(|r| r.as_ref().map(|r| r.best_head)));
    let run = move |mode: Ablation| {
        if let Some(h) = head() {
            send(&s, Request::Ablate { heads: vec![h], mode });
        }
    };
    let result = move || {
        w.ablation.get().map(|(a, ms)| {
            let t = word(a.before.target.text.as_deref().unwrap_or("?"));
            let named: Vec<String> = a.heads.iter().map(|(l, h)| format!("{l}.{h}")).collect();
            let mode = match a.mode {
                Ablation::Zero => "zero",
                Ablation::Mean => "mean",
            };
            let (lp_before, lp_after) = (a.before.target.log_prob.to_string(), a.after.target.log_prob.to_string());
            view! {
                <p class="said" data-testid="ablate-p" data-before=lp_before data-after=lp_after data-heads=named.join(",") data-mode=mode>
                    {format!("Head {} {mode}-ablated: p({t}) {:.3} → {:.3}", named.join(", "), a.before.prob(), a.after.prob())}
                </p>
                <p>{format!("Now: {}. {}", dist_line(&a.after), took(ms))}</p>
            }
        })
    };
    view! {
        <section class="whatif-part" aria-labelledby="ablate-title">
            <h3 id="ablate-title">"Ablate a head"</h3>
            <p class="hint">"Remove one head's output at every position (zero, or its mean over the prompt) and compute the answer again: a head's causal effect, beside the paper's one-pass score. The head is the one under the head grid's cursor."</p>
            <div class="controls">
                <button data-testid="ablate-zero" disabled=move || !idle() || head().is_none() on:click=move |_| run(Ablation::Zero)>
                    {move || head().map_or("Zero-ablate".to_string(), |(l, h)| format!("Zero-ablate head {l}.{h}"))}</button>
                <button data-testid="ablate-mean" disabled=move || !idle() || head().is_none() on:click=move |_| run(Ablation::Mean)>
                    {move || head().map_or("Mean-ablate".to_string(), |(l, h)| format!("Mean-ablate head {l}.{h}"))}</button>
            </div>
            <div aria-live="polite">{result}</div>
        </section>
    }
}

#[component]
fn Zoom(s: State) -> impl IntoView {
    let w = s.whatif;
    let idle = move || can_run(&s);
    let result = move || {
        w.zoomed.get().map(|z: ZoomView| {
            let t = word(z.before.target.text.as_deref().unwrap_or("?"));
            let mean = z.random.iter().map(|r| r.outcome.prob()).sum::<f32>() / z.random.len().max(1) as f32;
            let numbers = serde_json::to_string(&(&z.by_map, &z.random)).unwrap_or_default();
            let win = z.by_map.window;
            view! {
                <img class="zoomed" src=format!("data:image/jpeg;base64,{}", STANDARD.encode(&z.window_jpeg)) alt=format!("the map's window: rows {} to {}, columns {} to {} of the patch grid", win.row, win.row + win.side - 1, win.col, win.col + win.side - 1) />
                <p class="said" data-testid="zoom-p" data-json=numbers>
                    {format!("p({t}): {:.3} on the whole picture → {:.3} on the map's window; {:.3} on average over {} random windows of that size", z.before.prob(), z.by_map.outcome.prob(), mean, z.random.len())}
                </p>
                <p>{format!("On the map's window the model says: {}. {}", dist_line(&z.by_map.outcome), took(z.millis))}</p>
            }
        })
    };
    view! {
        <section class="whatif-part" aria-labelledby="zoom-title">
            <h3 id="zoom-title">"Zoom and ask again"</h3>
            <p class="hint">"Crop the picture to the part the map points at (half its side) and ask the same question; random crops of the same size are the comparison. A model that only knows small objects may fail on the enlarged one: that is a finding about the model, not the map."</p>
            <button data-testid="zoom-run" disabled=move || !idle() on:click=move |_| send(&s, Request::Zoom { zoom: ZOOM, seeds: ZOOM_SEEDS })>"Zoom on the map's window"</button>
            <div aria-live="polite">{result}</div>
        </section>
    }
}

#[component]
pub fn WhatIfView(s: State) -> impl IntoView {
    view! {
        <Knockout s=s />
        <Ablate s=s />
        <Patching s=s />
        <Zoom s=s />
        <WholeAnswer s=s />
    }
}
