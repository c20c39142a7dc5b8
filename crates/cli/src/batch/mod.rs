//! `llava-lens batch`: `explain` over a file of examples with the model loaded once, one JSON
//! line per example appended as it finishes (docs/BATCH.md). A rerun skips the ids already in
//! the output, so an interrupted run resumes; `--shard I/N` takes a deterministic share of the
//! ids for array jobs whose outputs merge by concatenation. The next image is decoded and
//! preprocessed, and its mask read, on another thread while the GPU explains the current one.

mod analyses;
pub mod examples;
mod journal;
mod mask;
mod zoom;

use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use llava_lens_gpu::GpuError;
use llava_lens_model::preprocess::{ImageProcessor, Preprocessed, ResizeMode, load_image, preprocess};
use llava_lens_model::{PromptParts, WeightDType};
use serde_json::{Value, json};

use crate::explain::{MethodArgs, document};
use crate::input::{load_model, load_text_side, model_dir};
use analyses::{Settings, Words};
use examples::{Columns, Example, Row, Shard, fnv1a};
use journal::Journal;

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Examples: JSON lines, or CSV when the name ends in .csv (docs/BATCH.md lists the fields:
    /// id, image, context, question, answer_prefix, answer, target, contrast, tags, box, mask,
    /// mask_value, color, object).
    /// Image paths are relative to this file's folder.
    #[arg(long)]
    pub examples: PathBuf,
    /// Output: one JSON line per example, appended; ids already there are skipped (resume).
    #[arg(long)]
    pub out: PathBuf,
    /// HF model folder (default: $LLAVA_LENS_MODEL, else the bundled demo model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Weights on the GPU: f32 (the paper's fidelity), f16, q8, q4.
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDType,
    /// Original LLaVA's pad-to-square instead of HF's resize + center crop.
    #[arg(long)]
    pub pad_to_square: bool,
    /// Read FIELD from another column: FIELD=NAME (repeatable), e.g. --column question=q_text.
    #[arg(long = "column")]
    pub columns: Vec<String>,
    /// Explain only the I-th of N shares of the ids (1-based, e.g. 3/8), chosen by a hash of the
    /// id: N jobs with 1/N .. N/N together cover every example once.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Also write each example's map over the model's view as a PNG into this folder.
    #[arg(long)]
    pub maps: Option<PathBuf>,
    /// Which of an example's image and text context to give the model: both (as the file
    /// says), only the image (the paper's VQA) or only the context (its TQA). One examples
    /// file then serves every condition, and the outputs share ids for `report`.
    #[arg(long, value_enum, default_value_t = Inputs::Both)]
    pub inputs: Inputs,
    /// The paper's analyses for examples with color and object fields: the information storage
    /// of the best heads' top positions, and their attention when the question names another
    /// object (docs/BATCH.md, "Analyses").
    #[arg(long)]
    pub analyses: bool,
    /// With --analyses: how many of the best heads the storage reading covers.
    #[arg(long, default_value_t = 1, requires = "analyses")]
    pub analysis_heads: usize,
    /// With --analyses: how many top positions of each head (the paper reads 20).
    #[arg(long, default_value_t = 20, requires = "analyses")]
    pub analysis_positions: usize,
    /// Zoom and re-ask: crop each image to the map's window of this share of the side, ask
    /// again, and ask on random windows of the same size; `report` compares their accuracy
    /// (docs/BATCH.md, "Zoom").
    #[arg(long)]
    pub zoom: Option<f32>,
    /// With --zoom: random windows per example (seeded by the example's id).
    #[arg(long, default_value_t = 3, requires = "zoom")]
    pub zoom_seeds: usize,
    #[command(flatten)]
    pub method: MethodArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Inputs {
    Both,
    Image,
    Context,
}

impl Inputs {
    /// The example with only the inputs asked for; an error when that leaves it nothing.
    fn select(self, mut e: Example) -> Result<Example, String> {
        let kept = match self {
            Inputs::Both => return Ok(e),
            Inputs::Image => {
                e.context = None;
                "image"
            }
            Inputs::Context => {
                e.image = None;
                "context"
            }
        };
        if e.image.is_none() && e.context.is_none() {
            return Err(format!("with --inputs {kept}, this example has no {kept}"));
        }
        Ok(e)
    }
}

/// What the loader thread hands over: the example's row index and its image made ready.
type Loaded = (usize, Result<View, String>);

/// An example's image as the loader thread readies it, ahead of the GPU.
struct View {
    pre: Preprocessed,
    /// The mask's `mask_coverage` when the example has a mask. Read here so the GPU does not
    /// wait on a decode; a bad mask is still its own example's error line, and only once the
    /// explanation succeeds (`explain_row`), as when the main loop read it.
    mask: Option<anyhow::Result<Vec<f32>>>,
    /// The picture as given, kept for `--zoom` (its windows are cut from it).
    original: Option<image::RgbImage>,
}

pub fn run(a: &BatchArgs) -> anyhow::Result<()> {
    let mut rows = examples::read(&a.examples, &Columns::parse(&a.columns)?)?;
    for r in &mut rows {
        if let Ok(e) = &r.example {
            r.example = a.inputs.select(e.clone()).map_err(|p| format!("line {}: {p}", r.line));
        }
    }
    if a.analyses && (a.analysis_heads == 0 || a.analysis_positions == 0) {
        anyhow::bail!("--analysis-heads and --analysis-positions must be at least 1");
    }
    if let Some(z) = a.zoom.filter(|z| !(*z > 0.0 && *z <= 1.0)) {
        anyhow::bail!("--zoom {z} is not a share of the picture's side in (0, 1]");
    }
    // Drawn from the whole file, so every shard draws the same random words.
    let words = Words::of(&rows);
    if let Some(m) = &a.maps {
        std::fs::create_dir_all(m).with_context(|| format!("--maps {}: creating the folder", m.display()))?;
    }
    let mut journal = Journal::open(&a.out)?;
    if journal.repaired_bytes > 0 {
        eprintln!("{}: dropped a cut-off last line ({} bytes) left by an interrupted run", a.out.display(), journal.repaired_bytes);
    }
    let in_shard: Vec<&Row> = rows.iter().filter(|r| a.shard.is_none_or(|s| s.takes(&r.id))).collect();
    let todo: Vec<&Row> = in_shard.iter().copied().filter(|r| !journal.done.contains(&r.id)).collect();
    eprintln!(
        "{}: {} examples{}, {} already in {}, {} to explain",
        a.examples.display(),
        rows.len(),
        a.shard.map(|s| format!(", {} in shard {}/{}", in_shard.len(), s.index, s.count)).unwrap_or_default(),
        in_shard.len() - todo.len(),
        a.out.display(),
        todo.len()
    );
    if todo.is_empty() {
        return Ok(());
    }
    let dir = model_dir(a.model.as_deref())?;
    let (config, tokenizer) = load_text_side(&dir)?;
    // A plain decoder has no image processor: its image examples become error lines.
    let processor: Result<ImageProcessor, String> = match config.vision_tower() {
        Ok(_) => Ok(ImageProcessor::load(&dir, &config)?),
        Err(no_vision) => Err(no_vision.to_string()),
    };
    let m = load_model(&dir, config, tokenizer, a.dtype)?;
    let model_name = dir.display().to_string();
    let mode = if a.pad_to_square { ResizeMode::PadToSquare } else { ResizeMode::CenterCrop };

    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} examples, {per_sec}, eta {eta} {msg}").unwrap());
    let (mut explained, mut failed) = (0usize, 0usize);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Two images ahead at most: decoding overlaps the GPU without holding a folder in memory.
        let (send, receive) = mpsc::sync_channel::<Loaded>(2);
        // Only examples with an image go through the loader, in order.
        let jobs: Vec<(usize, &Example, PathBuf)> = todo
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let e = r.example.as_ref().ok()?;
                Some((i, e, e.image_path(&a.examples)?))
            })
            .collect();
        let (processor, examples_file) = (&processor, &a.examples);
        // The patch grid the mask is measured on: the model's, as `document` lays it over the
        // image. A processor exists only with a vision tower, so this is Some whenever it is Ok.
        let vision = m.model.config.vision.as_ref();
        let keep_original = a.zoom.is_some();
        scope.spawn(move || {
            for (i, example, path) in jobs {
                let loaded = match processor {
                    Ok(p) => load_image(&path)
                        .and_then(|img| Ok((preprocess(&img, p, mode)?, keep_original.then_some(img))))
                        .map_err(|e| e.to_string()),
                    Err(no_vision) => Err(no_vision.clone()),
                };
                let view = loaded.map(|(pre, original)| {
                    let mask = example
                        .mask_path(examples_file)
                        .zip(vision)
                        .map(|(mask_path, vision)| mask::coverage_of_view(&mask_path, example.mask_value, &pre, vision));
                    View { pre, mask, original }
                });
                if send.send((i, view)).is_err() {
                    return; // the main loop stopped (a device failure)
                }
            }
        });
        let mut next = receive.iter();
        for (i, row) in todo.iter().enumerate() {
            let result = match &row.example {
                Err(problem) => Err(anyhow::anyhow!("{problem}")),
                Ok(example) if example.image.is_some() => {
                    let (at, view) = next.next().context("the image loader stopped early")?;
                    debug_assert_eq!(at, i);
                    view.map_err(|e| anyhow::anyhow!(e))
                        .and_then(|view| explain_row(a, &m, &model_name, example, Some(view), &row.id, &words, processor))
                }
                Ok(example) => explain_row(a, &m, &model_name, example, None, &row.id, &words, processor),
            };
            let line = match result {
                Ok(mut v) => {
                    explained += 1;
                    with_id(&mut v, &row.id, row.example.as_ref().ok());
                    v
                }
                Err(e) if is_device_failure(&e) => {
                    bar.abandon();
                    return Err(e.context(format!(
                        "the GPU failed on example {:?}; the {} lines written to {} are kept: rerun to resume",
                        row.id,
                        journal.done.len(),
                        a.out.display()
                    )));
                }
                Err(e) => {
                    failed += 1;
                    let mut v = json!({"error": format!("{e:#}")});
                    with_id(&mut v, &row.id, row.example.as_ref().ok());
                    v
                }
            };
            journal.append(&row.id, &line)?;
            bar.inc(1);
            if failed > 0 {
                bar.set_message(format!("({failed} failed)"));
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    eprintln!(
        "explained {explained}, recorded {failed} error{} ({}); {} now holds {} examples",
        if failed == 1 { "" } else { "s" },
        if failed > 0 { "their lines say why" } else { "none" },
        a.out.display(),
        journal.done.len()
    );
    Ok(())
}

/// One example through `explain`'s document, as a JSON value (the map PNG written if asked),
/// with its mask's coverage when it has one, the example's analyses when `--analyses` asks, and
/// its zoomed answers when `--zoom` does.
#[allow(clippy::too_many_arguments)]
fn explain_row(
    a: &BatchArgs,
    m: &crate::input::LoadedModel,
    model_name: &str,
    example: &Example,
    view: Option<View>,
    id: &str,
    words: &Words,
    processor: &Result<ImageProcessor, String>,
) -> anyhow::Result<Value> {
    let (pre, mask, original) = match view {
        Some(View { pre, mask, original }) => (Some(pre), mask, original),
        None => (None, None, None),
    };
    let pre = pre.as_ref();
    let tok = &m.tokenizer;
    let parts = PromptParts { image: pre.is_some(), context: example.context.as_deref().unwrap_or("") };
    let make_prompt = |question: &str, prefix: &str| -> anyhow::Result<llava_lens_model::Prompt> {
        let prompt = tok.prompt_with(parts, question, prefix)?;
        m.config.check_prompt(&prompt, 0).map_err(|e| anyhow::anyhow!(e))?;
        Ok(prompt)
    };
    let prompt = make_prompt(&example.question, &example.answer_prefix)?;
    let settings = Settings { heads: a.analysis_heads, positions: a.analysis_positions };
    let plan = a.analyses.then(|| analyses::plan(example, id, words, tok, settings));
    let probe = plan.as_ref().and_then(|p| p.as_ref().ok()).map(|(probe, _)| probe.clone());
    let done = document(
        &m.model,
        &m.ctx,
        tok,
        model_name,
        &prompt,
        pre,
        example.image.as_deref(),
        example.target.as_deref(),
        example.contrast.as_deref(),
        &a.method,
        probe,
    )?;
    if let (Some(folder), Some(png)) = (&a.maps, &done.png) {
        let path = folder.join(map_file_name(id));
        png.save(&path).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut line = serde_json::to_value(&done.explanation)?;
    // The mask as the patch grid sees it (read by the loader): reports score the map against it.
    if let Some(coverage) = mask {
        line["mask_coverage"] = json!(coverage?);
    }
    match plan {
        None => {}
        Some(Err(skipped)) => line["analyses"] = json!({ "skipped": skipped }),
        Some(Ok((_, chosen))) => {
            let pixels = pre.map_or(&[][..], |p| &p.pixels[..]);
            let shift = analyses::attention_shift(m, example, &chosen, &done.explanation, &prompt, pixels, make_prompt);
            let attention = match shift {
                Ok(s) => serde_json::to_value(s)?,
                Err(e) if is_device_failure(&e) => return Err(e),
                Err(e) => json!({ "error": format!("{e:#}") }),
            };
            line["analyses"] = json!({ "words": chosen, "attention": attention });
        }
    }
    if let (Some(fraction), Some(pre), Some(original), Ok(processor)) = (a.zoom, pre, &original, processor) {
        let zoomed = zoom::zoom_row(m, &done.explanation, &prompt, pre, original, processor, fraction, a.zoom_seeds, id)?;
        line["zoom"] = serde_json::to_value(zoomed)?;
    }
    Ok(line)
}

/// The line: `id`, the `example` as read (absent when the row could not be read), and `v`'s
/// fields (keys in alphabetical order, as in `explain --json`).
fn with_id(v: &mut Value, id: &str, example: Option<&Example>) {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), Value::String(id.to_string()));
    if let Some(e) = example {
        out.insert("example".into(), serde_json::to_value(e).unwrap_or(Value::Null));
    }
    if let Value::Object(rest) = std::mem::take(v) {
        out.extend(rest);
    }
    *v = Value::Object(out);
}

/// The GPU itself failed (lost, out of memory, a readback that never came): every later example
/// would fail the same way, so the run stops instead of recording them all as errors.
fn is_device_failure(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref::<GpuError>(), Some(GpuError::Device { .. } | GpuError::Readback { .. } | GpuError::Reported(_))))
}

/// A file name for an id: its safe characters, plus a hash when any were replaced (two ids that
/// differ only in unsafe characters still get two files).
fn map_file_name(id: &str) -> String {
    let safe: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if safe == id && !id.starts_with('.') {
        format!("{id}.png")
    } else {
        format!("{}-{:08x}.png", safe.trim_start_matches('.'), fnv1a(id.as_bytes()) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_names_are_safe_and_distinct() {
        assert_eq!(map_file_name("000003-q1"), "000003-q1.png");
        let (a, b) = (map_file_name("a/b"), map_file_name("a?b"));
        assert!(a.starts_with("a_b-") && b.starts_with("a_b-") && a != b, "{a} {b}");
        assert!(!map_file_name("../x").contains('/') && !map_file_name("..").starts_with('.'));
    }
}
