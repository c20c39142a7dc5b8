//! `eval faithfulness`: deletion and insertion AUCs (docs/METHOD.md sec. 7) of the paper's map, mean
//! attention and random orders, averaged over held-out scenes, per perturbation operator. One
//! present-object question per scene (chosen by the scene index), explained for its correct
//! colour word.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use llava_lens_explain::faithfulness::faithfulness;
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_model::WeightDType;
use serde_json::json;

use super::{SceneSet, ask, pixels};
use crate::faithfulness::{Operators, parse_operators};

#[derive(Debug, Args)]
pub struct FaithfulnessTableArgs {
    #[command(flatten)]
    pub scenes: SceneSet,
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDType,
    /// token, pixel, knockout, a comma-separated list, or all.
    #[arg(long, default_value = "all", value_parser = parse_operators)]
    pub operator: Operators,
    /// Steps of the deletion/insertion grid.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Random orders per scene.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Running mean and standard deviation (Welford), skipping undefined AUCs.
#[derive(Default, Clone)]
struct Stat {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Stat {
    fn add(&mut self, v: Option<f32>) {
        if let Some(v) = v {
            self.n += 1;
            let d = v as f64 - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (v as f64 - self.mean);
        }
    }

    fn sd(&self) -> f64 {
        if self.n > 1 { (self.m2 / (self.n - 1) as f64).sqrt() } else { 0.0 }
    }

    fn json(&self) -> serde_json::Value {
        json!({"mean": self.mean, "sd": self.sd(), "n": self.n})
    }
}

/// Per operator: [map, mean attention, random] x [deletion, insertion], and how often the map
/// beats random on each curve.
#[derive(Default, Clone)]
struct OperatorStats {
    auc: [[Stat; 2]; 3],
    map_beats_random: [usize; 2],
    scenes: usize,
}

pub fn run(a: &FaithfulnessTableArgs) -> anyhow::Result<()> {
    let super::Setup { dir, m, processor, spec } = a.scenes.setup(a.dtype, a.markdown.as_deref().map(|p| (p, "--markdown")))?;
    let ops = a.operator.0.clone();
    let mut stats = vec![OperatorStats::default(); ops.len()];
    let bar = indicatif::ProgressBar::new(a.scenes.n);
    for scene in a.scenes.scenes(&spec) {
        let q = super::one_present(&scene);
        let asked = ask(&m.tokenizer, q)?;
        let px = pixels(&scene, &processor)?;
        let opts = ExplainOptions { target: Some(asked.answer), lens_k: 0, ..Default::default() };
        let e = pollster::block_on(explain(&m.model, &m.ctx, &asked.prompt, &px, &opts))?;
        for (op, st) in ops.iter().zip(stats.iter_mut()) {
            let f = pollster::block_on(faithfulness(&m.model, &m.ctx, &asked.prompt, &px, &e, *op, a.steps, a.seeds))?;
            st.scenes += 1;
            let curves = [
                (f.map.deletion_auc, f.map.insertion_auc),
                (f.mean_attention.deletion_auc, f.mean_attention.insertion_auc),
                f.random_mean_auc,
            ];
            for (k, (del, ins)) in curves.iter().enumerate() {
                st.auc[k][0].add(*del);
                st.auc[k][1].add(*ins);
            }
            if let (Some(m), Some(r)) = (f.map.deletion_auc, f.random_mean_auc.0) {
                st.map_beats_random[0] += (m < r) as usize;
            }
            if let (Some(m), Some(r)) = (f.map.insertion_auc, f.random_mean_auc.1) {
                st.map_beats_random[1] += (m > r) as usize;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let names = ["map", "mean_attention", "random"];
    let rows: Vec<_> = ops
        .iter()
        .zip(&stats)
        .map(|(op, st)| {
            let orders: serde_json::Map<_, _> =
                names.iter().enumerate().map(|(k, n)| (n.to_string(), json!({"deletion_auc": st.auc[k][0].json(), "insertion_auc": st.auc[k][1].json()}))).collect();
            json!({
                "operator": op,
                "scenes": st.scenes,
                "orders": orders,
                "map_beats_random": {"deletion": st.map_beats_random[0] as f64 / st.scenes.max(1) as f64, "insertion": st.map_beats_random[1] as f64 / st.scenes.max(1) as f64},
            })
        })
        .collect();
    if let Some(path) = &a.markdown {
        let mut md =
            String::from("| operator | order | deletion AUC (lower is better) | insertion AUC (higher is better) |\n|---|---|---|---|\n");
        for (op, st) in ops.iter().zip(&stats) {
            for (k, n) in names.iter().enumerate() {
                let (d, i) = (&st.auc[k][0], &st.auc[k][1]);
                writeln!(md, "| {op:?} | {n} | {:.3} ± {:.3} | {:.3} ± {:.3} |", d.mean, d.sd(), i.mean, i.sd())?;
            }
        }
        std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
    }
    let doc = json!({
        "model": dir, "dtype": a.dtype.name(), "seed": a.scenes.seed, "n_scenes": a.scenes.n, "steps": a.steps, "random_seeds": a.seeds,
        "adapter": m.ctx.describe(), "target": "the correct colour word", "auc_summary": "mean and sample sd over scenes",
        "results": rows,
    });
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
