//! `llava-lens explain`: the paper's head ranking and patch map for one image and question, as a
//! PNG over the model's view of the image and a JSON document (docs/EXPLANATION.md). `batch`
//! builds each of its lines with the same [`document`], so a batch line and `explain --json`
//! agree for the same example.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use image::RgbImage;
use llava_lens_explain::explanation::{Crop, MapLegend};
use llava_lens_explain::render::{Palette, RenderOptions, Upsample, render, render_on_original};
use llava_lens_explain::{ExplainOptions, Explanation, StorageProbe, explain};
use llava_lens_gpu::GpuContext;
use llava_lens_model::preprocess::Preprocessed;
use llava_lens_model::{Llava, LlavaTokenizer, Prompt};

use crate::input::{Loaded, ModelInput};
use crate::output::{Kind, check_writable};

/// What the method computes beyond the paper's best head (shared by `explain` and `batch`).
#[derive(Debug, Clone, Args)]
pub struct MethodArgs {
    /// Also map the sum of the top K heads (an extension; the paper uses the single best head).
    #[arg(long, default_value_t = 1)]
    pub top_k_heads: usize,
    /// Logit lens: top tokens per image patch (0 turns it off).
    #[arg(long, default_value_t = 5)]
    pub lens_k: usize,
    /// Also read the residual entering this layer at the image positions through the unembedding.
    #[arg(long)]
    pub lens_layer: Option<usize>,
    /// Sequence positions (comma-separated) whose residual is split into key input (attention)
    /// and value input (MLP), each read through the unembedding.
    #[arg(long, value_delimiter = ',')]
    pub decompose: Vec<usize>,
    /// Layer of the decomposition (default: after the last layer).
    #[arg(long)]
    pub decompose_layer: Option<usize>,
    /// Also map this head's per-patch scores, as LAYER.HEAD (repeatable; JSON `head_maps`).
    #[arg(long = "head-map", value_parser = parse_head)]
    pub head_maps: Vec<(usize, usize)>,
    /// Crisp patch grid instead of bicubic upsampling.
    #[arg(long)]
    pub crisp: bool,
    /// The authors' style: the normalised map in gray at opacity 0.8 (default: signed scores on
    /// a diverging map).
    #[arg(long)]
    pub authors_style: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub input: ModelInput,
    /// Token to explain, by id or text ("brown"); default: the model's top-1 next token.
    #[arg(long)]
    pub target: Option<String>,
    /// Explain "target rather than contrast" (scores of the logit difference).
    #[arg(long)]
    pub contrast: Option<String>,
    #[command(flatten)]
    pub method: MethodArgs,
    /// PNG of the patch map over the model's view of the image.
    #[arg(long, default_value = "map.png")]
    pub out: PathBuf,
    /// Also a PNG of the map drawn back onto the original image (through the crop box).
    #[arg(long)]
    pub out_original: Option<PathBuf>,
    /// Explanation JSON (printed to stdout when absent).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `LAYER.HEAD`, as the JSON and the page name heads.
pub fn parse_head(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not LAYER.HEAD (e.g. 14.7)");
    let (l, h) = s.split_once('.').ok_or_else(bad)?;
    Ok((l.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?))
}

/// One explained example, ready to write: the document and the map drawn over the model's view.
pub struct Explained {
    pub explanation: Explanation,
    /// The map over the model's view of the image (None for a text-only question).
    pub png: Option<RgbImage>,
    /// What drew it, to draw it again onto the original image.
    pub values: Vec<f32>,
    pub style: RenderOptions,
}

impl Explained {
    /// The map drawn back onto the original image, through the crop box.
    pub fn on_original(&self, original: &RgbImage) -> anyhow::Result<RgbImage> {
        let c = self.explanation.crop.as_ref().context("the explanation has no crop box")?;
        Ok(render_on_original(original, (c.x, c.y, c.width, c.height), &self.values, self.explanation.grid, &self.style)?)
    }
}

/// The example in `explain`'s form: an id for `target` and `contrast` (by id or text), the
/// method run (with the information-storage reading when `storage` asks), tokens named, and the
/// image, crop and legend of the map (`image_name` as the user wrote the path). A text-only
/// prompt has no image (`pre` None): no map is drawn.
#[allow(clippy::too_many_arguments)]
pub fn document(
    model: &Llava,
    ctx: &GpuContext,
    tok: &LlavaTokenizer,
    model_name: &str,
    prompt: &Prompt,
    pre: Option<&Preprocessed>,
    image_name: Option<&str>,
    target: Option<&str>,
    contrast: Option<&str>,
    m: &MethodArgs,
    storage: Option<StorageProbe>,
) -> anyhow::Result<Explained> {
    let opts = ExplainOptions {
        target: target.map(|t| tok.resolve_token(t)).transpose()?,
        contrast: contrast.map(|t| tok.resolve_token(t)).transpose()?,
        top_k_heads: m.top_k_heads,
        lens_k: m.lens_k,
        lens_layer: m.lens_layer,
        decompose: m.decompose.clone(),
        decompose_layer: m.decompose_layer,
        head_maps: m.head_maps.clone(),
        storage,
        model_name: model_name.to_string(),
    };
    let pixels = pre.map_or(&[][..], |p| &p.pixels[..]);
    let mut e = pollster::block_on(explain(model, ctx, prompt, pixels, &opts))?;
    e.name_tokens(tok);
    // Signed scores on a diverging scale by default (the normalised map hides the sign); the
    // authors' normalised map in gray at 0.8 on request.
    let upsample = if m.crisp { Upsample::Crisp } else { Upsample::Smooth };
    let (values, style) = match (&e.patch_map, m.authors_style) {
        (Some(map), true) => {
            (map.clone(), RenderOptions { upsample, palette: Palette::Gray, opacity: 0.8, units: "share", ..Default::default() })
        }
        _ => (e.patch_scores.clone(), RenderOptions { upsample, palette: Palette::Signed, ..Default::default() }),
    };
    let Some(pre) = pre else {
        return Ok(Explained { explanation: e, png: None, values, style });
    };
    let (view, c) = pre.patch_region(model.config.vision_tower()?.covered_pixels());
    let (png, legend) = render(&view, &values, e.grid, &style)?;
    e.image = image_name.map(String::from);
    e.crop = Some(Crop { x: c.x, y: c.y, width: c.width, height: c.height });
    e.legend = Some(MapLegend {
        min: legend.min,
        max: legend.max,
        colormap: legend.colormap.into(),
        units: if m.authors_style { "share of the normalised map" } else { "nats (log-probability increase)" }.into(),
    });
    Ok(Explained { explanation: e, png: Some(png), values, style })
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<()> {
    let with_image = args.input.image.is_some();
    if with_image {
        check_writable(&args.out, Kind::Png, "--out")?;
    } else if args.out_original.is_some() {
        anyhow::bail!("--out-original draws the map onto the image: give --image");
    }
    if let Some(p) = &args.out_original {
        check_writable(p, Kind::Png, "--out-original")?;
    }
    if let Some(p) = &args.json {
        check_writable(p, Kind::Text, "--json")?;
    }
    let Loaded { dir, tokenizer: tok, prompt, image: pre, original, ctx, model } = args.input.load(0)?;
    let image_name = args.input.image.as_ref().map(|p| p.display().to_string());
    let done = document(
        &model,
        &ctx,
        &tok,
        &dir.display().to_string(),
        &prompt,
        pre.as_ref(),
        image_name.as_deref(),
        args.target.as_deref(),
        args.contrast.as_deref(),
        &args.method,
        None,
    )?;
    let e = &done.explanation;
    for h in e.top_heads.iter() {
        eprintln!("  head {:>2}.{:<2} {:+.4} nats", h.layer, h.head, h.score);
    }
    // The JSON first: it holds every number, the PNGs only draw some of them.
    let text = e.to_json_pretty()?;
    match &args.json {
        Some(path) => std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?,
        None => crate::print_out(text)?,
    }
    if let Some(png) = &done.png {
        png.save(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    }
    if let (Some(path), Some(original)) = (&args.out_original, &original) {
        done.on_original(original)?.save(path).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "explained {:?} ({}): best head {}.{} ({:+.4} nats); {}",
        e.target.text.as_deref().unwrap_or("?"),
        e.target.id,
        e.best_head.layer,
        e.best_head.head,
        e.best_head.score,
        if with_image { format!("map written to {}", args.out.display()) } else { "text only: no image map".into() }
    );
    Ok(())
}
