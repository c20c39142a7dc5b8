//! "How faithful is this map?": deletion and insertion curves of p(target) for the map's order,
//! mean attention's and random orders (docs/METHOD.md, faithfulness), drawn with their AUCs.
//! Lower deletion AUC and higher insertion AUC mean the map ranks the patches the answer depends
//! on first.

use leptos::prelude::*;
use llava_lens_explain::faithfulness::{Curve, Faithfulness, Operator, normalise_curve};
use wasm_bindgen::JsCast;

use super::State;
use super::dom;
use crate::protocol::Request;

/// Orders drawn and their colours: the map, mean attention, then each random seed.
const COLOURS: [&str; 3] = ["#c0392b", "#2471a3", "#999999"];

/// The two curves of an order, by name.
#[derive(Clone, Copy)]
enum Side {
    Deletion,
    Insertion,
}

/// A curve normalised as the AUCs are, `(s - s_base) / (s_orig - s_base)`; None if ill-posed.
fn normalised(f: &Faithfulness, c: &Curve, side: Side) -> Option<Vec<f32>> {
    let raw = match side {
        Side::Deletion => &c.deletion,
        Side::Insertion => &c.insertion,
    };
    normalise_curve(raw, f.s_orig, f.s_base)
}

/// Every order with its label and colour: the map, mean attention, the random ones.
fn curves(f: &Faithfulness) -> Vec<(String, &'static str, &Curve)> {
    let mut out = vec![("map".to_string(), COLOURS[0], &f.map), ("mean attention".to_string(), COLOURS[1], &f.mean_attention)];
    out.extend(f.random.iter().map(|c| (c.order.clone(), COLOURS[2], c)));
    out
}

fn draw(canvas: &web_sys::HtmlCanvasElement, f: &Faithfulness) -> Result<(), String> {
    let (w, h) = (720.0, 260.0);
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    let ctx: web_sys::CanvasRenderingContext2d =
        canvas.get_context("2d").map_err(|e| format!("{e:?}"))?.ok_or("no 2d context")?.unchecked_into();
    ctx.set_fill_style_str("white");
    ctx.fill_rect(0.0, 0.0, w, h);
    for (i, (side, title)) in
        [(Side::Deletion, "deletion: best patches removed first"), (Side::Insertion, "insertion: best patches restored first")]
            .iter()
            .enumerate()
    {
        let bx = (40.0 + i as f64 * 360.0, 30.0, 300.0, 190.0);
        ctx.set_stroke_style_str("#444");
        ctx.set_line_width(1.0);
        ctx.stroke_rect(bx.0, bx.1, bx.2, bx.3);
        ctx.set_fill_style_str("#222");
        ctx.set_font("12px sans-serif");
        let _ = ctx.fill_text(title, bx.0, bx.1 - 10.0);
        let _ = ctx.fill_text("1", bx.0 - 14.0, bx.1 + 10.0);
        let _ = ctx.fill_text("0", bx.0 - 14.0, bx.1 + bx.3);
        let _ = ctx.fill_text("share of patches moved →", bx.0 + 80.0, bx.1 + bx.3 + 18.0);
        let _ = ctx.fill_text("p(answer), 1 = as given, 0 = all removed", bx.0 + 6.0, bx.1 + 14.0);
        // Random orders first, so the map's and mean attention's lines stay on top.
        for (_, colour, c) in curves(f).iter().rev() {
            let Some(v) = normalised(f, c, *side) else { continue };
            ctx.set_stroke_style_str(colour);
            ctx.set_line_width(if *colour == COLOURS[2] { 1.0 } else { 2.5 });
            ctx.begin_path();
            for (j, (x, y)) in crate::view::plot_points(&v, bx, (0.0, 1.0)).into_iter().enumerate() {
                if j == 0 { ctx.move_to(x, y) } else { ctx.line_to(x, y) }
            }
            ctx.stroke();
        }
    }
    Ok(())
}

fn auc_row(name: String, colour: &'static str, c: &Curve) -> impl IntoView + use<> {
    let fmt = |v: Option<f32>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    view! { <tr><td><span style=format!("color:{colour}")>"■ "</span>{name}</td><td>{fmt(c.deletion_auc)}</td><td>{fmt(c.insertion_auc)}</td></tr> }
}

#[component]
pub fn FaithfulView(s: State) -> impl IntoView {
    let operator = RwSignal::new(Operator::Knockout.name().to_string());
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        if let (Some(f), Some(c)) = (s.out.faithful.get(), canvas.get()) {
            if let Err(e) = draw(&c, &f) {
                s.fail(e);
            }
        }
    });
    let ask = move |_| match operator.get_untracked().parse::<Operator>() {
        Ok(operator) => {
            s.error.set(None);
            s.run.busy.set(true);
            s.out.faithful.set(None);
            dom::send(&Request::Faithfulness { operator, steps: 8, seeds: 2 });
        }
        Err(e) => s.fail(e),
    };
    view! {
        <section class="faithful" data-testid="faithfulness">
            <p class="hint">"Remove the patches the map ranks highest first and watch p(answer) fall (deletion: lower area is better); restore them first into an image with every patch removed and watch it rise (insertion: higher is better). Mean attention and random orders are the yardsticks. 8 steps, 2 random orders."</p>
            <label>"Remove a patch by "<select data-testid="faithful-operator" prop:value=move || operator.get() on:change=move |ev| operator.set(event_target_value(&ev))>
                <option value="knockout">"blocking the answer's attention to it (fast: the image is kept)"</option>
                <option value="token">"replacing its image token by the mean token"</option>
                <option value="pixel">"blurring its pixels (re-runs the vision tower)"</option>
            </select></label>
            <button data-testid="faithful-run" on:click=ask disabled=move || s.run.busy.get() || s.model.loaded.get().is_none() || s.run.live.with(Option::is_none)>"Draw the curves"</button>
            <Show when=move || s.out.faithful.get().is_some()>
                {move || s.out.faithful.get().and_then(|f| f.warning.map(|w| view! { <p class="warning" data-testid="faithful-warning">{w}</p> }))}
                <canvas node_ref=canvas data-testid="faithful-curves" role="img"
                    aria-label="Deletion and insertion curves of the answer's probability; the table below gives their areas"></canvas>
                <table class="auc" data-testid="faithful-auc">
                    <tr><th>"order"</th><th>"deletion AUC"</th><th>"insertion AUC"</th></tr>
                    {move || s.out.faithful.get().map(|f| curves(&f).into_iter().map(|(n, c, v)| auc_row(n, c, v)).collect_view())}
                </table>
                <p class="timing">{move || s.out.faithful_ms.get().map(|m| format!("curves computed in {m:.0} ms ({} perturbation)", s.out.faithful.get().map(|f| f.operator.name()).unwrap_or_default()))}</p>
            </Show>
        </section>
    }
}
