//! The main view: the picture with the chosen map over it (the paper's map, mean attention, the
//! top-k heads' sum or any head's map), drawn on the visitor's own picture through the model's
//! crop box with the parts the model did not see veiled; the colour bar; the patch readout for
//! the pointer or the keyboard cursor; the highest patches as text. Progress shows here, where
//! the result will appear.

use std::sync::Arc;

use leptos::prelude::*;
use llava_lens_explain::render::{Palette, RenderOptions, Upsample, legend, render_on_original};
use wasm_bindgen::JsCast;

use super::colorbar::{ColorBar, signed};
use super::state::{MapChoice, State};
use crate::view::{patch_at, step_patch, top_patches};

/// The marks a vocabulary puts on a word-initial piece: SentencePiece's "▁" (LLaMA) and byte-level
/// BPE's "Ġ" (Qwen); pieces are shown without them.
pub const WORD_START: [char; 2] = ['▁', 'Ġ'];
/// Patches outlined on the map and listed as text.
const TOP_PATCHES: usize = 3;

/// The model's crop in the drawn picture's pixels: x, y, width, height.
type CropBox = (f32, f32, f32, f32);

/// What is drawn: the values, their palette and units, and what the caption says.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    values: Vec<f32>,
    palette: Palette,
    units: &'static str,
    caption: String,
}

fn shown(s: &State) -> Option<Shown> {
    let r = s.out.recorded.get()?;
    let what = if r.contrast.is_some() { "logit-difference increase" } else { "log-probability increase" };
    let palette = s.view.palette.get();
    let best = || Shown {
        values: r.patch_scores.clone(),
        palette,
        units: "nats",
        caption: format!("best head {}.{}: {what} per patch (nats)", r.best_head.0, r.best_head.1),
    };
    Some(match s.view.map.get() {
        MapChoice::Paper => best(),
        MapChoice::MeanAttention => Shown {
            values: r.baseline_map.clone(),
            // Attention shares are never negative: a sequential map.
            palette: if palette == Palette::Signed { Palette::Viridis } else { palette },
            units: "share",
            caption: "mean attention of the last position over the picture (share of attention)".into(),
        },
        MapChoice::TopK => match s.out.top_k.get() {
            Some((k, values)) => {
                Shown { values, palette, units: "nats", caption: format!("sum of the top {k} heads' maps: {what} per patch (nats)") }
            }
            None => best(),
        },
        MapChoice::Head(l, h) if (l, h) == r.best_head => best(),
        MapChoice::Head(l, h) => match s.out.head_maps.get().into_iter().find(|m| (m.0, m.1) == (l, h)) {
            Some(m) => Shown { values: m.2, palette, units: "nats", caption: format!("head {l}.{h} (clicked): {what} per patch (nats)") },
            None if s.whatif.answer_shown.get() > 0 => Shown {
                caption: format!("head {l}.{h}: only the top 3 heads are mapped for this answer word; showing the best head's map"),
                ..best()
            },
            None => Shown { caption: format!("head {l}.{h}: computing its map…"), ..best() },
        },
    })
}

/// The picture drawn under the map and the crop box in its pixels: the visitor's picture (shared,
/// not copied: the opacity slider redraws on every step), else the recorded view of the model.
fn base_of(s: &State) -> Result<(Arc<image::RgbImage>, CropBox), String> {
    if let Some(o) = s.out.original.get() {
        return Ok((o.image, (o.crop.x, o.crop.y, o.crop.width, o.crop.height)));
    }
    let crop = s.out.recorded.with(|r| {
        let r = r.as_ref().ok_or("no explanation")?;
        image::load_from_memory(&r.crop_jpeg).map_err(|e| format!("the recorded picture is damaged: {e}"))
    })?;
    let crop = crop.to_rgb8();
    let (w, h) = (crop.width() as f32, crop.height() as f32);
    Ok((Arc::new(crop), (0.0, 0.0, w, h)))
}

fn put(canvas: &web_sys::HtmlCanvasElement, img: &image::RgbImage, crop: CropBox) -> Result<(), String> {
    let (w, h) = img.dimensions();
    let rgba: Vec<u8> = img.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2], 255]).collect();
    canvas.set_width(w);
    canvas.set_height(h);
    let ctx: web_sys::CanvasRenderingContext2d =
        canvas.get_context("2d").map_err(|e| format!("{e:?}"))?.ok_or("no 2d context")?.unchecked_into();
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(wasm_bindgen::Clamped(&rgba), w, h).map_err(|e| format!("{e:?}"))?;
    ctx.put_image_data(&data, 0.0, 0.0).map_err(|e| format!("{e:?}"))?;
    let (x, y, cw, ch) = (f64::from(crop.0), f64::from(crop.1), f64::from(crop.2), f64::from(crop.3));
    if x > 0.5 || y > 0.5 || x + cw < f64::from(w) - 0.5 || y + ch < f64::from(h) - 0.5 {
        // What the model never saw is veiled, and the crop is marked.
        ctx.set_fill_style_str("rgba(0, 0, 0, 0.55)");
        ctx.begin_path();
        ctx.rect(0.0, 0.0, f64::from(w), f64::from(h));
        ctx.rect(x, y, cw, ch);
        ctx.fill_with_canvas_winding_rule(web_sys::CanvasWindingRule::Evenodd);
        ctx.set_stroke_style_str("#ffffff");
        ctx.set_line_width(2.0);
        let _ = ctx.set_line_dash(&js_sys::Array::of2(&6.into(), &4.into()));
        ctx.stroke_rect(x, y, cw, ch);
    }
    Ok(())
}

/// A patch's box in percent of the drawing (for the outlines laid over the canvas).
fn patch_box(p: usize, grid: usize, crop: CropBox, size: (u32, u32)) -> String {
    let (cell_w, cell_h) = (crop.2 / grid as f32, crop.3 / grid as f32);
    let (x, y) = (crop.0 + (p % grid) as f32 * cell_w, crop.1 + (p / grid) as f32 * cell_h);
    let (w, h) = (size.0.max(1) as f32, size.1.max(1) as f32);
    format!("left:{}%;top:{}%;width:{}%;height:{}%", 100.0 * x / w, 100.0 * y / h, 100.0 * cell_w / w, 100.0 * cell_h / h)
}

#[component]
pub fn MapView(s: State) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    // Worked out once per change, read by the drawing, the caption, the legend and the readouts.
    let current = Memo::new(move |_| shown(&s));
    // The drawing's size and crop box, for the pointer and the outlines.
    let geometry = RwSignal::new(None::<((u32, u32), CropBox)>);
    Effect::new(move |_| {
        let (Some(sh), op, crisp) = (current.get(), s.view.opacity.get(), s.view.crisp.get()) else { return };
        let (Some(c), Some(grid)) = (canvas.get(), s.out.recorded.with(|r| r.as_ref().map(|r| r.grid))) else { return };
        let upsample = if crisp { Upsample::Crisp } else { Upsample::Smooth };
        let opts = RenderOptions { upsample, palette: sh.palette, opacity: op, outline_top: 0, units: sh.units };
        let drawn = base_of(&s).and_then(|(base, crop)| {
            let img = render_on_original(&base, crop, &sh.values, grid, &opts).map_err(|e| e.to_string())?;
            put(&c, &img, crop)?;
            Ok((img.dimensions(), crop))
        });
        match drawn {
            Ok(g) => geometry.set(Some(g)),
            Err(e) => s.fail(e),
        }
        // Scrolled to once the new drawing has its size (a phone, where it lies below the question).
        if s.run.reveal.get_untracked() {
            s.run.reveal.set(false);
            super::dom::reveal("result");
        }
    });
    let grid = move || s.out.recorded.with(|r| r.as_ref().map_or(0, |r| r.grid));
    let point = move |ev: &leptos::ev::MouseEvent| -> Option<usize> {
        let (c, ((w, _), crop)) = (canvas.get_untracked()?, geometry.get_untracked()?);
        let k = f64::from(w) / c.get_bounding_client_rect().width().max(1.0);
        let bx = (f64::from(crop.0), f64::from(crop.1), f64::from(crop.2), f64::from(crop.3));
        patch_at(f64::from(ev.offset_x()) * k, f64::from(ev.offset_y()) * k, bx, grid())
    };
    let values = move || current.get().map(|sh| sh.values).unwrap_or_default();
    // A brush stroke ends: its patches are knocked out at once.
    let end_stroke = move || {
        if s.whatif.stroke.get_untracked() {
            s.whatif.stroke.set(false);
            super::whatif::knock_out(&s);
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let g = grid();
        let step = match ev.key().as_str() {
            "ArrowLeft" => (-1, 0),
            "ArrowRight" => (1, 0),
            "ArrowUp" => (0, -1),
            "ArrowDown" => (0, 1),
            "Home" => (0, 0),
            " " | "Enter" if s.whatif.brushing.get_untracked() => {
                ev.prevent_default();
                if let Some(p) = s.view.cursor.get_untracked() {
                    super::whatif::toggle(&s, p);
                }
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        let best = top_patches(&values(), 1).first().copied().unwrap_or(0);
        let at = match (s.view.cursor.get_untracked(), step) {
            (Some(p), d) if d != (0, 0) => step_patch(p, d, g),
            _ => best,
        };
        s.view.cursor.set(Some(at));
    };
    let outlines = move || {
        let (Some((size, crop)), g) = (geometry.get(), grid()) else { return Vec::new() };
        let mut boxes: Vec<(String, &'static str)> =
            top_patches(&values(), TOP_PATCHES).into_iter().map(|p| (patch_box(p, g, crop, size), "top")).collect();
        boxes.extend(s.whatif.brushed.get().into_iter().map(|p| (patch_box(p, g, crop, size), "knocked")));
        if let Some(p) = s.view.cursor.get() {
            boxes.push((patch_box(p, g, crop, size), "cursor"));
        }
        boxes
    };
    let describe = move || {
        let (Some(sh), g) = (current.get(), grid()) else { return String::new() };
        let tops: Vec<String> = top_patches(&sh.values, TOP_PATCHES)
            .into_iter()
            .map(|p| format!("row {}, column {} ({} {})", p / g, p % g, signed(sh.values[p]), sh.units))
            .collect();
        format!("Highest patches of the {}×{} grid: {}.", g, g, tops.join("; "))
    };
    let lens = move || match (s.view.cursor.get(), current.get(), grid()) {
        (Some(p), Some(sh), g) if g > 0 => {
            let score = sh.values.get(p).copied().unwrap_or(0.0);
            let tokens = s
                .out
                .lens_tokens
                .get()
                .and_then(|l| l.get(p).cloned())
                .map(|t| t.iter().map(|w| w.trim_start_matches(WORD_START).to_string()).collect::<Vec<_>>().join(", "));
            format!(
                "patch row {}, column {}: {} {}; logit lens of its image token: {}",
                p / g,
                p % g,
                signed(score),
                sh.units,
                tokens.unwrap_or_else(|| "not recorded in share links".into())
            )
        }
        _ => "Point at the map, or focus it and use the arrow keys: a patch's score and what the model reads from it.".into(),
    };
    let range = Signal::derive(move || {
        current.get().map(|sh| {
            let l = legend(&sh.values, sh.palette);
            (l.min, l.max)
        })
    });
    let palette = Signal::derive(move || current.get().map_or(s.view.palette.get(), |sh| sh.palette));
    let units = Signal::derive(move || current.get().map_or("nats", |sh| sh.units));
    let has_result = move || s.out.recorded.with(Option::is_some);
    let choice = move |c: MapChoice| move || s.view.map.get() == c;
    let head_choice = move || match s.view.map.get() {
        MapChoice::Head(l, h) => Some((l, h)),
        _ => None,
    };
    let progress = move || {
        let m = &s.model;
        if let Some((d, t)) = s.run.progress.get() {
            Some(("Explaining…".to_string(), d, t))
        } else if let Some((d, t)) = m.download.get() {
            Some((format!("Downloading the model: {} of {}", crate::files::human_bytes(d), crate::files::human_bytes(t)), d, t))
        } else if let Some((d, t)) = m.upload.get() {
            Some((format!("Loading the model onto the GPU: {d} of {t} tensors"), d, t))
        } else if m.loaded.get().is_none() && m.loading.get() {
            Some(("Preparing the model…".to_string(), 0, 0))
        } else {
            None
        }
    };
    view! {
        <section class="view" id="result" aria-labelledby="view-title" aria-busy=move || s.run.busy.get().to_string()>
            <h2 id="view-title" class="sr-only">"The picture and its map"</h2>
            <Show when=has_result>
                <fieldset class="choices" data-testid="map-choice">
                    <legend class="sr-only">"Map to show"</legend>
                    <label><input type="radio" name="map" prop:checked=choice(MapChoice::Paper) on:change=move |_| s.view.map.set(MapChoice::Paper) />"Best head"</label>
                    <label><input type="radio" name="map" data-testid="choice-mean" prop:checked=choice(MapChoice::MeanAttention) on:change=move |_| s.view.map.set(MapChoice::MeanAttention) />"Mean attention"</label>
                    <Show when=move || s.out.top_k.get().is_some()>
                        <label><input type="radio" name="map" prop:checked=choice(MapChoice::TopK) on:change=move |_| s.view.map.set(MapChoice::TopK) />
                            {move || format!("Top {} heads", s.out.top_k.get().map_or(0, |t| t.0))}</label>
                    </Show>
                    {move || head_choice().map(|(l, h)| view! {
                        <label><input type="radio" name="map" prop:checked=true />{format!("Head {l}.{h}")}</label>
                    })}
                </fieldset>
            </Show>
            <div class="frame" data-empty=move || (!has_result()).to_string()>
                <canvas node_ref=canvas data-testid="map" tabindex="0" role="img" aria-label=describe
                    aria-describedby="map-caption lens"
                    class:brushing=move || s.whatif.brushing.get()
                    on:pointermove=move |ev: leptos::ev::PointerEvent| {
                        let p = point(&ev);
                        s.view.cursor.set(p);
                        if let (Some(p), true) = (p, s.whatif.stroke.get_untracked()) {
                            super::whatif::brush(&s, p);
                        }
                    }
                    on:pointerdown=move |ev: leptos::ev::PointerEvent| {
                        if !s.whatif.brushing.get_untracked() || s.run.busy.get_untracked() {
                            return;
                        }
                        ev.prevent_default();
                        s.whatif.stroke.set(true);
                        if let Some(p) = point(&ev) {
                            super::whatif::brush(&s, p);
                        }
                    }
                    on:pointerup=move |_| end_stroke()
                    on:pointerleave=move |_| end_stroke()
                    on:keydown=on_key></canvas>
                {move || outlines().into_iter().map(|(style, class)| view! { <div class=format!("outline {class}") style=style></div> }).collect_view()}
                <Show when=move || !has_result()>
                    <p class="placeholder">"The picture and its map appear here."</p>
                </Show>
                {move || progress().map(|(label, d, t)| view! {
                    <div class="progress" data-testid="bar-inference" role="status">
                        <span>{label}</span>
                        {(t > 0).then(|| view! { <progress max=t.to_string() value=d.to_string()></progress> })}
                    </div>
                })}
            </div>
            <Show when=has_result>
                <p class="caption" id="map-caption" data-testid="map-caption">{move || current.get().map(|sh| sh.caption)}</p>
                <ColorBar range=range palette=palette units=units />
                <p class="lens" id="lens" data-testid="lens" aria-live="polite">{lens}</p>
                <p class="top-patches" data-testid="top-patches">{describe}</p>
                <div class="controls">
                    <label>"Colours"<select data-testid="palette" prop:value=move || super::state::palette_key(s.view.palette.get())
                        on:change=move |ev| s.view.palette.set(super::state::palette_from_key(&event_target_value(&ev)))>
                        <option value="signed">"red–blue (signed)"</option>
                        <option value="viridis">"viridis"</option>
                        <option value="gray">"gray (the authors')"</option>
                    </select></label>
                    <label>"Opacity"<input type="range" min="0" max="1" step="0.05" prop:value=move || s.view.opacity.get().to_string()
                        on:input=move |ev| s.view.opacity.set(event_target_value(&ev).parse().unwrap_or(0.5)) /></label>
                    <button class="toggle" aria-pressed=move || s.view.crisp.get().to_string() on:click=move |_| s.view.crisp.update(|c| *c = !*c)>"Patch grid"</button>
                </div>
            </Show>
        </section>
    }
}
