//! `eval ablation`: is the paper's top head causal? On held-out scenes, one present-object colour
//! question per scene (chosen as `eval faithfulness` chooses it), explained for its correct colour
//! word; then p(correct colour) with the top head ablated against with each other head ablated
//! (the expected drop of a random other head), and the head-level deletion curve's AUC for the
//! paper's ranking against random orders.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use llava_lens_explain::intervene::ablation::Ablation;
use llava_lens_explain::intervene::{Intervener, Targets};
use llava_lens_explain::method::rank_heads;
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_model::WeightDType;
use serde_json::json;

use super::{SceneSet, ask, pixels};

#[derive(Debug, Args)]
pub struct AblationTableArgs {
    #[command(flatten)]
    pub scenes: SceneSet,
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDType,
    /// zero, mean, or both (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "zero,mean")]
    pub mode: Vec<Ablation>,
    /// Random orders per scene for the deletion curve.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Mean and sample standard deviation.
fn stat(v: &[f64]) -> serde_json::Value {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    json!({"mean": mean, "sd": sd, "n": v.len()})
}

#[derive(Default)]
struct Columns {
    p0: Vec<f64>,
    top: Vec<f64>,
    other: Vec<f64>,
    top_beats_other: usize,
    auc_paper: Vec<f64>,
    auc_random: Vec<f64>,
    /// Every head's drop per scene, by (layer, head), and how often each was the top head.
    by_head: std::collections::BTreeMap<(usize, usize), (Vec<f64>, usize)>,
}

pub fn run(a: &AblationTableArgs) -> anyhow::Result<()> {
    let super::Setup { dir, m, processor, spec } = a.scenes.setup(a.dtype, a.markdown.as_deref().map(|p| (p, "--markdown")))?;
    let t = &m.model.config.text;
    let total = t.num_hidden_layers * t.num_attention_heads;
    if total < 2 {
        anyhow::bail!("the model has one head: there is no other head to compare with");
    }
    let mut cols: Vec<Columns> = a.mode.iter().map(|_| Columns::default()).collect();
    let bar = indicatif::ProgressBar::new(a.scenes.n);
    for scene in a.scenes.scenes(&spec) {
        let q = super::one_present(&scene);
        let asked = ask(&m.tokenizer, q)?;
        let px = pixels(&scene, &processor)?;
        let targets = Targets { target: asked.answer, contrast: None };
        let opts = ExplainOptions { target: Some(asked.answer), lens_k: 0, ..Default::default() };
        let e = pollster::block_on(explain(&m.model, &m.ctx, &asked.prompt, &px, &opts))?;
        let ranked = rank_heads(&e.head_scores);
        let mut iv = pollster::block_on(Intervener::new(&m.model, &m.ctx, &asked.prompt, &px))?;
        let p0 = pollster::block_on(iv.base_outcome(targets))?.prob() as f64;
        for (&mode, c) in a.mode.iter().zip(cols.iter_mut()) {
            let drop = |iv: &mut Intervener, h: (usize, usize)| -> anyhow::Result<f64> {
                Ok(p0 - pollster::block_on(iv.ablate(&[h], mode, targets))?.after.prob() as f64)
            };
            let top = drop(&mut iv, (ranked[0].layer, ranked[0].head))?;
            let mut others = Vec::with_capacity(total - 1);
            for h in &ranked[1..] {
                others.push(drop(&mut iv, (h.layer, h.head))?);
            }
            for (i, h) in ranked.iter().enumerate() {
                let e = c.by_head.entry((h.layer, h.head)).or_default();
                e.0.push(if i == 0 { top } else { others[i - 1] });
                e.1 += (i == 0) as usize;
            }
            let other = others.iter().sum::<f64>() / others.len() as f64;
            c.p0.push(p0);
            c.top.push(top);
            c.other.push(other);
            c.top_beats_other += (top > other) as usize;
            let curves = pollster::block_on(iv.ablation_curves(&ranked, mode, total, total.min(16), a.seeds, targets))?;
            c.auc_paper.push(curves.paper.auc as f64);
            c.auc_random.push(curves.random_mean_auc as f64);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows: Vec<_> = a
        .mode
        .iter()
        .zip(&cols)
        .map(|(mode, c)| {
            json!({
                "mode": mode,
                "scenes": c.p0.len(),
                "p_correct": stat(&c.p0),
                "drop_top_head": stat(&c.top),
                "drop_random_other_head": stat(&c.other),
                "top_drops_more": c.top_beats_other as f64 / c.p0.len().max(1) as f64,
                "curve_auc_paper": stat(&c.auc_paper),
                "curve_auc_random": stat(&c.auc_random),
                "by_head": c.by_head.iter().map(|(&(l, h), (drops, top))| json!({"head": [l, h], "drop": stat(drops), "top_head_in": top})).collect::<Vec<_>>(),
            })
        })
        .collect();
    if let Some(path) = &a.markdown {
        let mut md = String::from(
            "| ablation | scenes | p(correct) | drop, top head | drop, random other head | top drops more | curve AUC, paper order | curve AUC, random |\n|---|---|---|---|---|---|---|---|\n",
        );
        for r in &rows {
            let f = |k: &str| format!("{:.3} ± {:.3}", r[k]["mean"].as_f64().unwrap_or(f64::NAN), r[k]["sd"].as_f64().unwrap_or(f64::NAN));
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.1} % | {} | {} |",
                r["mode"].as_str().unwrap_or("?"),
                r["scenes"],
                f("p_correct"),
                f("drop_top_head"),
                f("drop_random_other_head"),
                100.0 * r["top_drops_more"].as_f64().unwrap_or(0.0),
                f("curve_auc_paper"),
                f("curve_auc_random")
            )?;
        }
        md.push_str("\n| ablation | head | drop of p(correct) when it alone is ablated | scenes where it is the paper's top head |\n|---|---|---|---|\n");
        for r in &rows {
            for h in r["by_head"].as_array().into_iter().flatten() {
                writeln!(
                    md,
                    "| {} | {}.{} | {:.3} ± {:.3} | {} |",
                    r["mode"].as_str().unwrap_or("?"),
                    h["head"][0],
                    h["head"][1],
                    h["drop"]["mean"].as_f64().unwrap_or(f64::NAN),
                    h["drop"]["sd"].as_f64().unwrap_or(f64::NAN),
                    h["top_head_in"]
                )?;
            }
        }
        std::fs::write(path, md)?;
    }
    let doc = json!({"model": dir, "seed": a.scenes.seed, "dtype": a.dtype.name(), "heads": total, "lower_auc_is_more_causal": true, "results": rows});
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
