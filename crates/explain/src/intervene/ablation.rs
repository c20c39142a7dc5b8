//! Head ablation: a set of heads' outputs (z, before o_proj) replaced at every position by zero
//! or by their mean over the prompt's positions, and the head-level deletion curve (heads removed
//! in the paper's ranking vs random orders).

use std::collections::BTreeMap;

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_gpu::{GpuTensor, Recorder, read_f32};
use llava_lens_model::Edits;
use llava_lens_tensor::Rng;
use serde::{Deserialize, Serialize};

use super::{Intervener, Outcome, Targets};
use crate::ExplainError;
use crate::explanation::HeadScore;
use crate::faithfulness::{auc, count_at};

/// What an ablated head's output becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ablation {
    /// Zero at every position.
    Zero,
    /// Its mean over the prompt's positions (the same input's own average, so the ablated head
    /// still adds its typical direction but no position-specific information).
    Mean,
}

impl std::str::FromStr for Ablation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zero" => Ok(Ablation::Zero),
            "mean" => Ok(Ablation::Mean),
            _ => Err(format!("unknown ablation {s:?}; expected zero or mean")),
        }
    }
}

/// A head as `[layer, head]`.
pub type HeadId = (usize, usize);

/// One ablation and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadAblation {
    pub mode: Ablation,
    pub heads: Vec<HeadId>,
    pub before: Outcome,
    pub after: Outcome,
}

impl<'a> Intervener<'a> {
    /// Each layer's mean per-head output over the prompt's positions (`[heads * head_dim]`),
    /// computed for the layers not yet known by one pass that captures z at every position.
    async fn z_means(&mut self, layers: &[usize]) -> Result<(), ExplainError> {
        let missing: Vec<usize> = layers.iter().copied().filter(|l| !self.z_means.contains_key(l)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let t = &self.model.config.text;
        let (heads, hd) = (t.num_attention_heads, t.head_dim);
        let all: Vec<usize> = (0..self.seq).collect();
        let all_heads: Vec<usize> = (0..heads).collect();
        let mut plan = CapturePlan::new();
        for &l in &missing {
            plan.add(Hook::z(l), &all, &all_heads)?;
        }
        let mut rec = Recorder::new(self.ctx, "interventions: mean head outputs");
        let pre = self.model.prefill_with_features(&mut rec, &self.prompt, self.features.clone(), &plan, 0, None)?;
        rec.submit();
        self.runs += 1;
        for l in missing {
            // [seq, heads, head_dim]: the mean over rows of each column.
            let z = read_f32(self.ctx, &pre.captures.attention(l)?.z).await?;
            let w = heads * hd;
            let mut mean = vec![0f64; w];
            for row in z.chunks_exact(w) {
                mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
            }
            self.z_means.insert(l, mean.into_iter().map(|m| (m / self.seq as f64) as f32).collect());
        }
        Ok(())
    }

    /// Each of `layers`' per-head outputs averaged over this prompt's positions (`[heads *
    /// head_dim]` per layer): a mean ablation's fill, or one example's share of a dataset's mean.
    pub async fn head_means(&mut self, layers: &[usize]) -> Result<BTreeMap<usize, Vec<f32>>, ExplainError> {
        self.z_means(layers).await?;
        Ok(layers.iter().map(|l| (*l, self.z_means[l].clone())).collect())
    }

    /// Mean ablation fills from elsewhere (a dataset's mean, [`mean_of`]) instead of this
    /// prompt's own: every layer given here uses them.
    pub fn use_means(&mut self, means: BTreeMap<usize, Vec<f32>>) -> Result<(), ExplainError> {
        let t = &self.model.config.text;
        let w = t.num_attention_heads * t.head_dim;
        if let Some((l, m)) = means.iter().find(|(l, m)| **l >= t.num_hidden_layers || m.len() != w) {
            return Err(ExplainError::Input(format!("mean head outputs for layer {l} hold {} values; the model takes {w}", m.len())));
        }
        self.z_means.extend(means);
        Ok(())
    }

    /// The edits that ablate `heads`.
    pub async fn ablation_edits(&mut self, heads: &[HeadId], mode: Ablation) -> Result<Edits, ExplainError> {
        let t = &self.model.config.text;
        let (layers, n_heads, hd) = (t.num_hidden_layers, t.num_attention_heads, t.head_dim);
        if let Some(&(l, h)) = heads.iter().find(|&&(l, h)| l >= layers || h >= n_heads) {
            return Err(ExplainError::Input(format!("head {l}.{h} does not exist: the model has {layers} layers of {n_heads} heads")));
        }
        let mut by_layer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(l, h) in heads {
            by_layer.entry(l).or_default().push(h);
        }
        if mode == Ablation::Mean {
            self.z_means(&by_layer.keys().copied().collect::<Vec<_>>()).await?;
        }
        let w = n_heads * hd;
        let mut edits = Edits::default();
        for (l, hs) in by_layer {
            let mut keep_fill = vec![1f32; w];
            keep_fill.resize(2 * w, 0.0);
            for h in hs {
                for c in h * hd..(h + 1) * hd {
                    keep_fill[c] = 0.0;
                    keep_fill[w + c] = if mode == Ablation::Mean { self.z_means[&l][c] } else { 0.0 };
                }
            }
            edits.head_blend.insert(l, GpuTensor::from_f32(self.ctx, &keep_fill, &[2 * w], "head ablation keep and fill")?);
        }
        Ok(edits)
    }

    /// The answer with `heads` ablated, beside the unablated one.
    pub async fn ablate(&mut self, heads: &[HeadId], mode: Ablation, targets: Targets) -> Result<HeadAblation, ExplainError> {
        let before = self.base_outcome(targets).await?;
        let edits = self.ablation_edits(heads, mode).await?;
        let after = self.run(&edits, targets).await?;
        Ok(HeadAblation { mode, heads: heads.to_vec(), before, after })
    }
}

/// p(target) as heads are removed in one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationCurve {
    pub order: String,
    /// Heads removed at each step.
    pub removed: Vec<usize>,
    /// p(target) at each step.
    pub probs: Vec<f32>,
    /// Trapezoid area under p(target) / p(target unablated) over the steps (0 to 1 on the x
    /// axis): lower means the order finds the heads the answer depends on sooner.
    pub auc: f32,
}

/// The head-level deletion curve: the paper's ranking against random orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationCurves {
    pub mode: Ablation,
    pub target: u32,
    /// How many heads the curves remove in all (the first this many of each order).
    pub heads: usize,
    pub steps: usize,
    pub s_orig: f32,
    pub paper: AblationCurve,
    pub random: Vec<AblationCurve>,
    pub random_mean_auc: f32,
}

impl<'a> Intervener<'a> {
    async fn ablation_curve(
        &mut self,
        name: &str,
        order: &[HeadId],
        mode: Ablation,
        steps: usize,
        s_orig: f32,
        targets: Targets,
    ) -> Result<AblationCurve, ExplainError> {
        let (mut removed, mut probs) = (Vec::new(), Vec::new());
        for k in 0..=steps {
            let m = count_at(k, steps, order.len());
            let p = if m == 0 {
                s_orig
            } else {
                let edits = self.ablation_edits(&order[..m], mode).await?;
                self.run(&edits, targets).await?.prob()
            };
            removed.push(m);
            probs.push(p);
        }
        let relative: Vec<f32> = probs.iter().map(|p| p / s_orig.max(f32::MIN_POSITIVE)).collect();
        Ok(AblationCurve { order: name.into(), removed, auc: auc(&relative), probs })
    }

    /// Removes the first `heads` of the paper's ranking (`ranked`, best first) and of `seeds`
    /// random orders of every head, cumulatively on a grid of `steps`.
    pub async fn ablation_curves(
        &mut self,
        ranked: &[HeadScore],
        mode: Ablation,
        heads: usize,
        steps: usize,
        seeds: usize,
        targets: Targets,
    ) -> Result<AblationCurves, ExplainError> {
        let t = &self.model.config.text;
        let total = t.num_hidden_layers * t.num_attention_heads;
        if ranked.len() != total {
            return Err(ExplainError::Input(format!("the ranking holds {} heads; the model has {total}", ranked.len())));
        }
        let heads = heads.clamp(1, total);
        let steps = steps.clamp(1, heads);
        let s_orig = self.base_outcome(targets).await?.prob();
        let paper: Vec<HeadId> = ranked.iter().map(|h| (h.layer, h.head)).take(heads).collect();
        let paper = self.ablation_curve("paper", &paper, mode, steps, s_orig, targets).await?;
        let mut random = Vec::new();
        for seed in 0..seeds as u64 {
            let order = random_order(total, t.num_attention_heads, seed);
            random.push(self.ablation_curve(&format!("random seed {seed}"), &order[..heads], mode, steps, s_orig, targets).await?);
        }
        let random_mean_auc = random.iter().map(|c| c.auc).sum::<f32>() / random.len().max(1) as f32;
        Ok(AblationCurves { mode, target: targets.target, heads, steps, s_orig, paper, random, random_mean_auc })
    }
}

/// Every head in a seeded random order (Fisher-Yates, the faithfulness curves' generator).
pub fn random_order(total: usize, heads_per_layer: usize, seed: u64) -> Vec<HeadId> {
    let mut order: Vec<usize> = (0..total).collect();
    let mut rng = Rng::new(seed);
    for i in (1..total).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order.into_iter().map(|i| (i / heads_per_layer, i % heads_per_layer)).collect()
}

/// The mean of several inputs' head means (each input weighted equally, whatever its length).
pub fn mean_of(per_input: &[BTreeMap<usize, Vec<f32>>]) -> BTreeMap<usize, Vec<f32>> {
    let mut sum: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for m in per_input {
        for (l, v) in m {
            let s = sum.entry(*l).or_insert_with(|| vec![0.0; v.len()]);
            s.iter_mut().zip(v).for_each(|(a, b)| *a += *b as f64);
        }
    }
    let n = per_input.len().max(1) as f64;
    sum.into_iter().map(|(l, s)| (l, s.into_iter().map(|x| (x / n) as f32).collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_mean_weighs_every_input_once() {
        let a = BTreeMap::from([(0, vec![1.0, 2.0]), (3, vec![0.0, 0.0])]);
        let b = BTreeMap::from([(0, vec![3.0, -2.0]), (3, vec![4.0, 8.0])]);
        assert_eq!(mean_of(&[a, b]), BTreeMap::from([(0, vec![2.0, 0.0]), (3, vec![2.0, 4.0])]));
        assert!(mean_of(&[]).is_empty());
        assert_eq!(random_order(6, 3, 1).len(), 6);
        let mut o = random_order(6, 3, 1);
        o.sort_unstable();
        assert_eq!(o, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)], "every head once");
    }
}
