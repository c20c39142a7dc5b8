//! `llava-lens ablate`, `patch` and `answer`: the interventions of crates/explain/src/intervene
//! on the command line, each printing one JSON document (docs/INTERVENTIONS.md) and a summary on
//! stderr.

use std::path::PathBuf;

use clap::Args;
use llava_lens_explain::intervene::ablation::{Ablation, HeadId};
use llava_lens_explain::intervene::answer::explain_answer;
use llava_lens_explain::intervene::patching::{Positions, patch};
use llava_lens_explain::intervene::{Intervener, Outcome, SCHEMA, Targets};
use llava_lens_explain::method::rank_desc;
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, load_image, preprocess};
use llava_lens_model::{LlavaTokenizer, PromptParts};
use serde_json::json;

use crate::explain::parse_head;
use crate::input::{Loaded, ModelInput};

#[derive(Debug, Args)]
pub struct AblateArgs {
    #[command(flatten)]
    pub input: ModelInput,
    /// Heads to ablate, as LAYER.HEAD, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_head)]
    pub heads: Vec<HeadId>,
    /// Ablate the paper's top N heads (ranked by one explanation first).
    #[arg(long)]
    pub top_heads: Option<usize>,
    /// zero: the heads' outputs become 0; mean: their mean over the prompt's positions.
    #[arg(long, default_value = "zero")]
    pub mode: Ablation,
    /// With --mode mean: the heads' mean outputs over every example of this file (each example's
    /// mean over its positions, averaged over the examples; `batch`'s JSONL or CSV) instead of
    /// over this prompt's positions.
    #[arg(long)]
    pub mean_over: Option<PathBuf>,
    /// Image patches the text after the image may not attend to (row-major indices into the
    /// grid, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub knockout_patches: Vec<usize>,
    /// Knock out the paper's map's top N patches.
    #[arg(long)]
    pub knockout_top: Option<usize>,
    /// Also the head-level deletion curve: the paper's ranking vs random orders.
    #[arg(long)]
    pub curve: bool,
    /// How many heads the curve removes in all (default: every head).
    #[arg(long)]
    pub curve_heads: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    /// Token whose probability is reported, by id or text (default: the model's answer).
    #[arg(long)]
    pub target: Option<String>,
    /// Also report logit(target) - logit(contrast).
    #[arg(long)]
    pub contrast: Option<String>,
}

fn targets(tok: &LlavaTokenizer, target: Option<&str>, contrast: Option<&str>, default: u32) -> anyhow::Result<Targets> {
    Ok(Targets {
        target: target.map(|t| tok.resolve_token(t)).transpose()?.unwrap_or(default),
        contrast: contrast.map(|t| tok.resolve_token(t)).transpose()?,
    })
}

fn named(mut o: Outcome, tok: &LlavaTokenizer) -> Outcome {
    o.name_tokens(tok);
    o
}

fn summary(what: &str, before: &Outcome, after: &Outcome) {
    let top =
        |o: &Outcome| o.top.first().map(|t| format!("{:?} {:.3}", t.text.as_deref().unwrap_or("?"), t.log_prob.exp())).unwrap_or_default();
    eprintln!(
        "{what}: p({:?}) {:.4} -> {:.4}; top {} -> {}",
        before.target.text.as_deref().unwrap_or("?"),
        before.prob(),
        after.prob(),
        top(before),
        top(after)
    );
}

/// The mean head outputs of `layers` over the examples of `file`, and how many examples were
/// used (rows that fail to read or load are skipped with a warning).
fn dataset_means(
    file: &std::path::Path,
    layers: &[usize],
    tok: &LlavaTokenizer,
    model: &llava_lens_model::Llava,
    ctx: &llava_lens_gpu::GpuContext,
    dir: &std::path::Path,
    pad: bool,
) -> anyhow::Result<(std::collections::BTreeMap<usize, Vec<f32>>, usize)> {
    use crate::batch::examples::{Columns, read};
    let rows = read(file, &Columns::default())?;
    let processor = ImageProcessor::load(dir, &model.config)?;
    let mode = if pad { ResizeMode::PadToSquare } else { ResizeMode::CenterCrop };
    let mut per_example = Vec::new();
    for row in &rows {
        let one = |e: &crate::batch::examples::Example| -> anyhow::Result<std::collections::BTreeMap<usize, Vec<f32>>> {
            let image = e.image_path(file);
            let parts = PromptParts { image: image.is_some(), context: e.context.as_deref().unwrap_or("") };
            let prompt = tok.prompt_with(parts, &e.question, &e.answer_prefix)?;
            let pixels = match &image {
                Some(p) => preprocess(&load_image(p)?, &processor, mode)?.pixels,
                None => Vec::new(),
            };
            let mut iv = pollster::block_on(Intervener::new(model, ctx, &prompt, &pixels))?;
            Ok(pollster::block_on(iv.head_means(layers))?)
        };
        match row.example.as_ref().map_err(|e| anyhow::anyhow!("{e}")).and_then(one) {
            Ok(m) => per_example.push(m),
            Err(e) => eprintln!("--mean-over {}: skipping {} (line {}): {e}", file.display(), row.id, row.line),
        }
    }
    if per_example.is_empty() {
        anyhow::bail!("--mean-over {}: no example could be run, so there is no mean", file.display());
    }
    Ok((llava_lens_explain::intervene::ablation::mean_of(&per_example), per_example.len()))
}

pub fn ablate(args: &AblateArgs) -> anyhow::Result<()> {
    if args.mean_over.is_some() && args.mode != Ablation::Mean {
        anyhow::bail!("--mean-over gives the mean that --mode mean ablates to: add --mode mean");
    }
    let nothing = args.heads.is_empty() && args.top_heads.is_none() && args.knockout_patches.is_empty() && args.knockout_top.is_none();
    if nothing && !args.curve {
        anyhow::bail!("nothing to ablate: give --heads, --top-heads, --knockout-patches, --knockout-top or --curve");
    }
    let Loaded { dir, tokenizer: tok, prompt, image, ctx, model, .. } = args.input.load(0)?;
    let pixels = image.as_ref().map_or(&[][..], |p| &p.pixels[..]);
    let mut iv = pollster::block_on(Intervener::new(&model, &ctx, &prompt, pixels))?;
    let t = targets(&tok, args.target.as_deref(), args.contrast.as_deref(), iv.prediction())?;
    // The paper's ranking, when anything asks for it.
    let ranked = if args.top_heads.is_some() || args.knockout_top.is_some() || args.curve {
        let opts = ExplainOptions { target: Some(t.target), contrast: t.contrast, lens_k: 0, ..Default::default() };
        Some(pollster::block_on(explain(&model, &ctx, &prompt, pixels, &opts))?)
    } else {
        None
    };
    let mut doc = json!({"schema": SCHEMA, "kind": "ablation", "model": dir, "image": args.input.image, "question": args.input.question});
    let ranking = ranked.as_ref().map(|e| llava_lens_explain::method::rank_heads(&e.head_scores)).unwrap_or_default();
    let mut heads = args.heads.clone();
    if let Some(n) = args.top_heads {
        heads.extend(ranking.iter().take(n).map(|h| (h.layer, h.head)).filter(|h| !args.heads.contains(h)));
    }
    if !heads.is_empty() {
        if let Some(file) = &args.mean_over {
            let layers: Vec<usize> = heads.iter().map(|h| h.0).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let (means, used) = dataset_means(file, &layers, &tok, &model, &ctx, &dir, args.input.pad_to_square)?;
            iv.use_means(means)?;
            doc["mean_over"] = json!({"file": file, "examples": used});
        }
        let mut a = pollster::block_on(iv.ablate(&heads, args.mode, t))?;
        a.before.name_tokens(&tok);
        a.after.name_tokens(&tok);
        summary(&format!("{:?} ablation of {} heads", args.mode, heads.len()), &a.before, &a.after);
        doc["heads"] = serde_json::to_value(&a)?;
    }
    let mut patches = args.knockout_patches.clone();
    if let (Some(n), Some(e)) = (args.knockout_top, &ranked) {
        patches.extend(rank_desc(&e.patch_scores).into_iter().take(n).filter(|p| !args.knockout_patches.contains(p)));
    }
    if !patches.is_empty() {
        let before = named(pollster::block_on(iv.base_outcome(t))?, &tok);
        let after = named(pollster::block_on(iv.knockout(&patches, t))?, &tok);
        summary(&format!("knockout of {} patches", patches.len()), &before, &after);
        doc["knockout"] = json!({"patches": patches, "before": before, "after": after});
    }
    if args.curve {
        let total = ranking.len();
        let c = pollster::block_on(iv.ablation_curves(&ranking, args.mode, args.curve_heads.unwrap_or(total), args.steps, args.seeds, t))?;
        eprintln!(
            "head deletion curve ({:?}, {} heads): AUC of p/p0 paper {:.4} vs random {:.4} (lower: the order finds what the answer needs sooner)",
            c.mode, c.heads, c.paper.auc, c.random_mean_auc
        );
        doc["curve"] = serde_json::to_value(&c)?;
    }
    doc["runs"] = json!(iv.runs);
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The clean input (its activations are patched in).
    #[command(flatten)]
    pub input: ModelInput,
    /// The corrupted input's image (default: the clean image).
    #[arg(long)]
    pub corrupt_image: Option<PathBuf>,
    /// The corrupted input's question (default: the clean question). Its prompt must have as
    /// many tokens as the clean one.
    #[arg(long)]
    pub corrupt_question: Option<String>,
    /// Residual-stream positions to patch: all, image, text, last, or comma-separated positions.
    #[arg(long, default_value = "all")]
    pub positions: String,
    /// The clean answer token (default: the clean input's own answer).
    #[arg(long)]
    pub target: Option<String>,
    /// The corrupted answer token (default: the corrupted input's own answer).
    #[arg(long)]
    pub contrast: Option<String>,
}

/// Sequence positions named on the command line: all, image, text, last, or a list.
pub fn parse_positions(s: &str, seq: usize, image: (usize, usize)) -> anyhow::Result<Vec<usize>> {
    let out: Vec<usize> = match s.trim().parse::<Positions>() {
        Ok(Positions::Image) if image.1 == 0 => anyhow::bail!("--positions image: the prompt has no image"),
        Ok(named) => named.select(seq, image),
        Err(_) => s
            .split(',')
            .map(|p| {
                p.trim().parse::<usize>().map_err(|_| anyhow::anyhow!("--positions: {p:?} is not a position (or all, image, text, last)"))
            })
            .collect::<Result<_, _>>()?,
    };
    if let Some(p) = out.iter().find(|&&p| p >= seq) {
        anyhow::bail!("--positions: {p} is outside the sequence of {seq}");
    }
    Ok(out)
}

pub fn patch_cmd(args: &PatchArgs) -> anyhow::Result<()> {
    if args.corrupt_image.is_none() && args.corrupt_question.is_none() {
        anyhow::bail!("the corrupted input must differ from the clean one: give --corrupt-image or --corrupt-question");
    }
    let Loaded { dir, tokenizer: tok, prompt, image, ctx, model, .. } = args.input.load(0)?;
    let pixels = image.as_ref().map_or(&[][..], |p| &p.pixels[..]);
    let question = args.corrupt_question.as_deref().unwrap_or(&args.input.question);
    let parts = PromptParts { image: args.input.image.is_some(), context: args.input.context.as_deref().unwrap_or("") };
    let corrupt_prompt = tok.prompt_with(parts, question, &args.input.answer_prefix)?;
    let corrupt_pixels = match (&args.corrupt_image, &image) {
        (Some(path), Some(_)) => {
            let mode = if args.input.pad_to_square { ResizeMode::PadToSquare } else { ResizeMode::CenterCrop };
            preprocess(&load_image(path)?, &ImageProcessor::load(&dir, &model.config)?, mode)?.pixels
        }
        (Some(_), None) => anyhow::bail!("--corrupt-image needs a clean --image"),
        (None, _) => pixels.to_vec(),
    };
    let mut clean = pollster::block_on(Intervener::new(&model, &ctx, &prompt, pixels))?;
    let mut corrupt = pollster::block_on(Intervener::new(&model, &ctx, &corrupt_prompt, &corrupt_pixels))?;
    let positions = parse_positions(&args.positions, clean.seq, clean.image_span())?;
    let target = args.target.as_deref().map(|t| tok.resolve_token(t)).transpose()?;
    let contrast = args.contrast.as_deref().map(|t| tok.resolve_token(t)).transpose()?;
    let mut p = pollster::block_on(patch(&mut clean, &mut corrupt, &positions, target, contrast))?;
    p.clean.name_tokens(&tok);
    p.corrupted.name_tokens(&tok);
    let best = |grid: &[Vec<f32>]| {
        grid.iter().enumerate().flat_map(|(l, r)| r.iter().enumerate().map(move |(i, &v)| (v, l, i))).max_by(|a, b| a.0.total_cmp(&b.0))
    };
    if let Some((v, l, i)) = best(&p.resid) {
        eprintln!("residual: layer {l}, position {} recovers {v:.3} of the logit difference", p.positions[i]);
    }
    if let Some((v, l, h)) = best(&p.heads) {
        eprintln!("heads at the last position: {l}.{h} recovers {v:.3}");
    }
    eprintln!("{} partial passes", p.runs);
    let doc = json!({
        "schema": SCHEMA, "kind": "patching", "model": dir,
        "clean": {"image": args.input.image, "question": args.input.question},
        "corrupted": {"image": args.corrupt_image.as_ref().or(args.input.image.as_ref()), "question": question},
        "target_text": tok.token(p.target), "contrast_text": tok.token(p.contrast),
        "patching": p,
    });
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    #[command(flatten)]
    pub input: ModelInput,
    /// Most tokens to generate and explain (generation also stops at the end-of-sequence token).
    #[arg(long, default_value_t = 8)]
    pub max_tokens: usize,
    /// Logit lens tokens per patch in each explanation (0: off).
    #[arg(long, default_value_t = 0)]
    pub lens_k: usize,
}

pub fn answer(args: &AnswerArgs) -> anyhow::Result<()> {
    let Loaded { dir, tokenizer: tok, prompt, image, ctx, model, .. } = args.input.load(args.max_tokens)?;
    let pixels = image.as_ref().map_or(&[][..], |p| &p.pixels[..]);
    let opts = ExplainOptions { lens_k: args.lens_k, model_name: dir.display().to_string(), ..Default::default() };
    let mut a = pollster::block_on(explain_answer(&model, &ctx, &prompt, pixels, &opts, args.max_tokens, tok.eos))?;
    for e in &mut a.explanations {
        e.name_tokens(&tok);
        e.image = args.input.image.as_ref().map(|p| p.display().to_string());
    }
    a.text = Some(tok.decode(&a.tokens)?);
    for (t, e) in a.tokens.iter().zip(&a.explanations) {
        eprintln!(
            "  {:>12?} p {:.3}  best head {}.{} ({:+.4} nats)",
            tok.token(*t).unwrap_or_default(),
            e.target.log_prob.exp(),
            e.best_head.layer,
            e.best_head.head,
            e.best_head.score
        );
    }
    let doc =
        json!({"schema": SCHEMA, "kind": "answer", "model": dir, "image": args.input.image, "question": args.input.question, "answer": a});
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ZoomArgs {
    #[command(flatten)]
    pub input: ModelInput,
    /// The window's side as a share of the model's view (0.5: half the side).
    #[arg(long, default_value_t = 0.5)]
    pub zoom: f32,
    /// Random windows of the same size to compare with.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    /// Token whose probability is reported, by id or text (default: the model's answer).
    #[arg(long)]
    pub target: Option<String>,
}

pub fn zoom(args: &ZoomArgs) -> anyhow::Result<()> {
    use llava_lens_explain::intervene::zoom::{ZoomInput, zoom};
    // Checked before the model loads (the engine checks it again).
    if !(args.zoom > 0.0 && args.zoom <= 1.0) {
        anyhow::bail!("--zoom {} is not a share of the picture's side in (0, 1]", args.zoom);
    }
    let Loaded { dir, tokenizer: tok, prompt, image, original, ctx, model } = args.input.load(0)?;
    let (Some(pre), Some(original)) = (image, original) else { anyhow::bail!("zooming crops the picture: give --image") };
    let processor = ImageProcessor::load(&dir, &model.config)?;
    let vision = model.config.vision_tower()?;
    let target = args.target.as_deref().map(|t| tok.resolve_token(t)).transpose()?;
    let opts = ExplainOptions { target, lens_k: 0, ..Default::default() };
    let e = pollster::block_on(explain(&model, &ctx, &prompt, &pre.pixels, &opts))?;
    let input = ZoomInput {
        prompt: &prompt,
        pixels: &pre.pixels,
        original: &original,
        processor: &processor,
        region: pre.patch_region(vision.covered_pixels()).1,
        grid: vision.grid(),
        scores: &e.patch_scores,
    };
    let t = Targets { target: e.target.id, contrast: None };
    let mut z = pollster::block_on(zoom(&model, &ctx, &input, args.zoom, 0..args.seeds as u64, t))?;
    z.name_tokens(&tok);
    let side = z.map.window.side;
    summary(&format!("zoomed on the map's {side}x{side} window"), &z.before, &z.map.outcome);
    eprintln!("  random {side}x{side} windows: mean p {:.4} over {}", z.random_mean_prob(), z.random.len());
    let doc = json!({
        "schema": SCHEMA, "kind": "zoom", "model": dir, "image": args.input.image, "question": args.input.question,
        "zoom": args.zoom, "grid": input.grid, "before": z.before, "map": z.map, "random": z.random, "random_mean_prob": z.random_mean_prob(),
    });
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
