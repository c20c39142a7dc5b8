//! `eval pointing`: the pointing game (Zhang et al. 2018) on generated scenes. For every
//! colour question about a present object, the explanation of the correct colour word is
//! computed and each map's top patch is checked against the object's exact visible mask.
//!
//! A hit: the top patch holds at least one visible pixel of the object (`hit_rate`), or at
//! least half of the patch is the object (`hit_rate_strict`). Maps: the paper's (the best head's
//! log-probability increase per image position), the sum of the top-k heads' (an extension), mean
//! attention of the last position over all layers and heads (the usual baseline), and a uniformly
//! random patch, whose hit rate is computed exactly (the share of hitting patches) rather than
//! sampled.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use llava_lens_explain::{ExplainOptions, Explanation, explain};
use llava_lens_model::WeightDType;
use llava_lens_model::preprocess::ImageProcessor;
use llava_lens_scenes::{COLORS, patch_coverage};
use serde_json::json;

use super::{SceneSet, argmax, ask, pixels};
use crate::input::{load_model, load_text_side, model_dir};

#[derive(Debug, Args)]
pub struct PointingArgs {
    #[command(flatten)]
    pub scenes: SceneSet,
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDType,
    /// k of the top-k-heads map.
    #[arg(long, default_value_t = 3)]
    pub top_k_heads: usize,
    /// Logit lens: top tokens read from each patch (0: off). Reported for the queried object's
    /// patches: does its colour word appear?
    #[arg(long, default_value_t = 5)]
    pub lens_k: usize,
    /// Also read the residual entering this layer at the image positions.
    #[arg(long)]
    pub lens_layer: Option<usize>,
    /// One JSON line per question (top patches, hits, best head) to this file.
    #[arg(long)]
    pub records: Option<PathBuf>,
}

/// Hits of one map over the questions.
#[derive(Default)]
struct Tally {
    hits: f64,
    strict: f64,
}

impl Tally {
    fn add(&mut self, top: usize, cover: &[f32]) -> (bool, bool) {
        let (hit, strict) = (cover[top] > 0.0, cover[top] >= 0.5);
        self.hits += hit as u8 as f64;
        self.strict += strict as u8 as f64;
        (hit, strict)
    }

    fn json(&self, n: usize) -> serde_json::Value {
        let n = n.max(1) as f64;
        json!({"hit_rate": self.hits / n, "hit_rate_strict": self.strict / n})
    }
}

/// Logit-lens counts over the queried objects' patches (>= half covered) and background patches.
#[derive(Default)]
struct Lens {
    object_patches: usize,
    own_color_in_top_k: usize,
    own_color_top1: usize,
    background_patches: usize,
    background_any_color_in_top_k: usize,
}

impl Lens {
    fn add(&mut self, rows: &[Vec<u32>], cover: &[f32], any_cover: &[f32], own: u32, colors: &[u32]) {
        for (p, top) in rows.iter().enumerate() {
            if cover[p] >= 0.5 {
                self.object_patches += 1;
                self.own_color_in_top_k += top.contains(&own) as usize;
                self.own_color_top1 += (top.first() == Some(&own)) as usize;
            } else if any_cover[p] == 0.0 {
                self.background_patches += 1;
                self.background_any_color_in_top_k += top.iter().any(|t| colors.contains(t)) as usize;
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        let r = |a: usize, b: usize| if b == 0 { None } else { Some(a as f64 / b as f64) };
        json!({
            "object_patches": self.object_patches,
            "own_color_in_top_k": r(self.own_color_in_top_k, self.object_patches),
            "own_color_top1": r(self.own_color_top1, self.object_patches),
            "background_patches": self.background_patches,
            "background_any_color_in_top_k": r(self.background_any_color_in_top_k, self.background_patches),
        })
    }
}

pub fn run(a: &PointingArgs) -> anyhow::Result<()> {
    let dir = model_dir(a.scenes.model.as_deref())?;
    if let Some(p) = &a.records {
        crate::output::check_writable(p, crate::output::Kind::Text, "--records")?;
    }
    let (config, tok) = load_text_side(&dir)?;
    let processor = ImageProcessor::load(&dir, &config)?;
    let spec = a.scenes.spec(&config)?;
    let m = load_model(&dir, config, tok, a.dtype)?;
    let colors: Vec<u32> = COLORS.iter().filter_map(|c| m.tokenizer.token_id(&format!("▁{}", c.name))).collect();
    let mut records = match &a.records {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)),
        None => None,
    };
    let (mut paper, mut topk, mut mean_attn, mut random) = (Tally::default(), Tally::default(), Tally::default(), Tally::default());
    let mut by_count: BTreeMap<usize, (usize, Tally, Tally)> = BTreeMap::new();
    let (mut lens_emb, mut lens_res) = (Lens::default(), Lens::default());
    let mut best_heads: BTreeMap<String, usize> = BTreeMap::new();
    let mut best_layers = vec![0usize; m.config.text.num_hidden_layers];
    let (mut n, mut hits_when_right, mut n_right) = (0usize, 0f64, 0usize);
    let grid = m.config.vision_tower()?.grid();
    let bar = indicatif::ProgressBar::new(a.scenes.n);
    for scene in a.scenes.scenes(&spec) {
        let px = pixels(&scene, &processor)?;
        // Coverage of every object and of the background, once per scene.
        let covers = patch_coverage(&scene.labels, scene.objects.len() as u8, grid);
        let any_cover: Vec<f32> = covers[0].iter().map(|bg| 1.0 - bg).collect();
        for q in scene.questions.iter().filter(|q| q.object.is_some()) {
            let id = q.object.expect("filtered");
            let asked = ask(&m.tokenizer, q)?;
            let opts = ExplainOptions {
                target: Some(asked.answer),
                top_k_heads: a.top_k_heads,
                lens_k: a.lens_k,
                lens_layer: a.lens_layer,
                model_name: dir.display().to_string(),
                ..Default::default()
            };
            let e: Explanation = pollster::block_on(explain(&m.model, &m.ctx, &asked.prompt, &px, &opts))?;
            let cover = &covers[id as usize];
            let top_paper = argmax(&e.patch_scores);
            let (hit, strict) = paper.add(top_paper, cover);
            let top_k = e.top_k_heads_map.as_ref().map(|t| argmax(&t.patch_scores)).unwrap_or(top_paper);
            topk.add(top_k, cover);
            let top_mean = argmax(&e.baseline_map);
            mean_attn.add(top_mean, cover);
            let share = |f: &dyn Fn(f32) -> bool| cover.iter().filter(|&&c| f(c)).count() as f64 / cover.len() as f64;
            random.hits += share(&|c| c > 0.0);
            random.strict += share(&|c| c >= 0.5);
            let entry = by_count.entry(scene.objects.len()).or_default();
            entry.0 += 1;
            entry.1.add(top_paper, cover);
            entry.2.add(top_mean, cover);
            let right = e.prediction == asked.answer;
            if right {
                n_right += 1;
                hits_when_right += hit as u8 as f64;
            }
            *best_heads.entry(format!("{}.{}", e.best_head.layer, e.best_head.head)).or_default() += 1;
            best_layers[e.best_head.layer] += 1;
            if let Some(lens) = &e.logit_lens {
                lens_emb.add(&lens.embedding, cover, &any_cover, asked.answer, &colors);
                if let Some(res) = &lens.residual {
                    lens_res.add(res, cover, &any_cover, asked.answer, &colors);
                }
            }
            if let Some(w) = records.as_mut() {
                let line = json!({
                    "scene": scene.index, "objects": scene.objects.len(), "shape": q.shape.name(), "answer": q.answer,
                    "answered_right": right, "best_head": e.best_head, "top_patch": {"paper": top_paper, "top_k_heads": top_k, "mean_attention": top_mean},
                    "hit": hit, "hit_strict": strict, "object_patches": cover.iter().filter(|&&c| c > 0.0).count(),
                });
                writeln!(w, "{line}")?;
            }
            n += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let by: serde_json::Map<_, _> = by_count
        .iter()
        .map(|(k, (c, p, mn))| (k.to_string(), json!({"questions": c, "paper": p.json(*c), "mean_attention": mn.json(*c)})))
        .collect();
    let mut top_k_json = topk.json(n);
    top_k_json["k"] = json!(a.top_k_heads);
    let doc = json!({
        "model": dir,
        "dtype": a.dtype.name(),
        "seed": a.scenes.seed,
        "n_scenes": a.scenes.n,
        "n_questions": n,
        "adapter": m.ctx.describe(),
        "hit_rule": "top patch holds >= 1 visible pixel of the queried object (strict: >= half the patch)",
        "target": "the correct colour word",
        "answer_accuracy": n_right as f64 / n.max(1) as f64,
        "maps": {
            "paper": paper.json(n),
            "top_k_heads": top_k_json,
            "mean_attention": mean_attn.json(n),
            "random": random.json(n),
        },
        "paper_hit_rate_when_answered_right": hits_when_right / n_right.max(1) as f64,
        "by_object_count": by,
        "best_head_by_layer": best_layers,
        "best_heads": best_heads,
        "logit_lens": {"k": a.lens_k, "embedding": lens_emb.json(), "residual_layer": a.lens_layer, "residual": a.lens_layer.map(|_| lens_res.json())},
    });
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
