//! How faithful is a patch map? (docs/METHOD.md sec. 7, ours: the paper shows maps qualitatively.)
//! Deletion and insertion curves of p(target) (RISE-style): remove (or restore) patches in the
//! order a map ranks them, on a fixed grid of steps, re-running the model at each step; each
//! curve normalised as (s - s_base) / (s_orig - s_base) and summarised by its trapezoid AUC, and
//! deletion also by AOPC. Orders compared: the map, mean attention, random (several seeds).
//!
//! Perturbation operators (every number says which it used):
//! - `token`: a removed patch's projected embedding is replaced by the mean over all patches;
//!   the vision tower is not re-run.
//! - `pixel`: a removed patch's 14 x 14 pixels are replaced by their per-channel mean (a blur that
//!   leaves no detail), and everything is re-run.
//!
//! - `knockout`: the text positions after the image may not attend to removed patches (their
//!   attention probability is 0, through the attention kernel's key mask); the image itself is
//!   untouched. The KV cache of the prefix up to the end of the image is computed once and
//!   reused; each step runs only the text after the image.

use llava_lens_gpu::capture::CapturePlan;
use llava_lens_gpu::{GpuContext, GpuTensor, Recorder, read_f32};
use llava_lens_model::{Llava, Prompt};
use llava_lens_tensor::Rng;
use serde::{Deserialize, Serialize};

use crate::ExplainError;
use crate::intervene::{Intervener, Targets};
use crate::method::rank_desc;

/// The smallest gap between p(target) with every patch and with none for which the curves are
/// normalised: below it, `(s - s_base) / (s_orig - s_base)` divides noise by almost nothing
/// (AUCs like 24.5 or -34.6 were reported), so the AUCs are left out and a warning says why.
pub const MIN_SPAN: f32 = 0.01;

/// `(s - s_base) / (s_orig - s_base)`; None when the two ends are closer than [`MIN_SPAN`].
pub fn normalise_curve(probs: &[f32], s_orig: f32, s_base: f32) -> Option<Vec<f32>> {
    let span = s_orig - s_base;
    (span.abs() >= MIN_SPAN).then(|| probs.iter().map(|s| (s - s_base) / span).collect())
}

/// Why the curves of these ends cannot be normalised, if they cannot.
pub fn ill_posed(s_orig: f32, s_base: f32) -> Option<String> {
    ((s_orig - s_base).abs() < MIN_SPAN).then(|| {
        format!(
            "p(target) is {s_orig:.4} with every patch and {s_base:.4} with none: closer than {MIN_SPAN}, so normalised curves would \
             divide noise by almost nothing; their AUCs are left out (the raw curves are kept)"
        )
    })
}

/// Trapezoid area under `curve` sampled on the uniform grid 0, 1/n, ..., 1.
pub fn auc(curve: &[f32]) -> f32 {
    let n = curve.len().saturating_sub(1).max(1) as f32;
    curve.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f32>() / n
}

/// Area over the perturbation curve: mean drop from the unperturbed score over the steps.
pub fn aopc(probs: &[f32]) -> f32 {
    let s0 = probs[0];
    let steps = &probs[1..];
    steps.iter().map(|s| s0 - s).sum::<f32>() / steps.len().max(1) as f32
}

/// How many patches are moved at step `k` of `steps` (of `n`).
pub fn count_at(k: usize, steps: usize, n: usize) -> usize {
    (k * n + steps / 2) / steps
}

/// How a patch is removed (the module's documentation says what each does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operator {
    Token,
    Pixel,
    Knockout,
}

impl Operator {
    pub const ALL: [Operator; 3] = [Operator::Token, Operator::Pixel, Operator::Knockout];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Token => "token",
            Operator::Pixel => "pixel",
            Operator::Knockout => "knockout",
        }
    }

    /// Operators from their names, comma-separated, or "all".
    pub fn parse_list(s: &str) -> Result<Vec<Operator>, String> {
        if s.trim() == "all" {
            return Ok(Operator::ALL.to_vec());
        }
        s.split(',').map(|p| p.trim().parse()).collect()
    }
}

impl std::str::FromStr for Operator {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Operator::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| format!("unknown operator {s:?}; expected token, pixel or knockout"))
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub order: String,
    /// p(target) at each step, deleting best-ranked patches first.
    pub deletion: Vec<f32>,
    /// p(target) at each step, restoring best-ranked patches first into a fully removed image.
    pub insertion: Vec<f32>,
    pub deletion_auc: Option<f32>,
    pub insertion_auc: Option<f32>,
    pub deletion_aopc: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    pub operator: Operator,
    pub target: u32,
    pub steps: usize,
    /// p(target) with nothing removed and with every patch removed.
    pub s_orig: f32,
    pub s_base: f32,
    pub map: Curve,
    pub mean_attention: Curve,
    /// One curve per seed.
    pub random: Vec<Curve>,
    /// Mean of the random curves' AUCs (deletion, insertion).
    pub random_mean_auc: (Option<f32>, Option<f32>),
    /// Set when the curves cannot be normalised ([`ill_posed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The model input with `removed` patches perturbed.
struct Inputs<'a> {
    model: &'a Llava,
    ctx: &'a GpuContext,
    prompt: &'a Prompt,
    pixels: &'a [f32],
    features: Vec<f32>,
    mean_feature: Vec<f32>,
    /// Knockout: the interventions' runner of this input (crates/explain/src/intervene), whose
    /// knockout re-runs only the text after the image on the prefix's KV cache (built on first
    /// use).
    knockout: Option<Intervener<'a>>,
}

impl Inputs<'_> {
    async fn prob(&mut self, op: Operator, removed: &[usize], target: u32) -> Result<f32, ExplainError> {
        let ctx = self.ctx;
        let c = &self.model.config;
        let mut rec = Recorder::new(ctx, "faithfulness");
        let plan = CapturePlan::new();
        let pre = match op {
            Operator::Token => {
                let d = c.text.hidden_size;
                let mut f = self.features.clone();
                for &p in removed {
                    f[p * d..(p + 1) * d].copy_from_slice(&self.mean_feature);
                }
                let t = GpuTensor::from_f32(ctx, &f, &[c.image_tokens(), d], "edited image features")?;
                self.model.prefill_with_features(&mut rec, self.prompt, Some(t), &plan, 0, None)?
            }
            Operator::Knockout => return self.knockout_prob(removed, target).await,
            Operator::Pixel => {
                let v = c.vision_tower()?;
                let (s, ps, g) = (v.image_size, v.patch_size, v.grid());
                let mut px = self.pixels.to_vec();
                for &p in removed {
                    let (py, pxx) = (p / g * ps, p % g * ps);
                    for ch in 0..3 {
                        let at = |y: usize, x: usize| (ch * s + py + y) * s + pxx + x;
                        let mean = (0..ps * ps).map(|i| px[at(i / ps, i % ps)]).sum::<f32>() / (ps * ps) as f32;
                        (0..ps * ps).for_each(|i| px[at(i / ps, i % ps)] = mean);
                    }
                }
                self.model.prefill(&mut rec, self.prompt, &px, &plan, 0)?
            }
        };
        let lp = self.model.target_log_probs(&mut rec, &pre.hidden, pre.seq_len - 1, &[target])?;
        rec.submit();
        Ok(read_f32(ctx, &lp).await?[0].exp())
    }

    /// p(target) with the text after the image blind to the `removed` patches, reusing the image
    /// prefix's KV cache.
    async fn knockout_prob(&mut self, removed: &[usize], target: u32) -> Result<f32, ExplainError> {
        if self.knockout.is_none() {
            self.knockout = Some(Intervener::new(self.model, self.ctx, self.prompt, self.pixels).await?);
        }
        let iv = self.knockout.as_mut().expect("built above");
        Ok(iv.knockout(removed, Targets { target, contrast: None }).await?.prob())
    }

    async fn curve(
        &mut self,
        op: Operator,
        name: &str,
        order: &[usize],
        steps: usize,
        target: u32,
        ends: (f32, f32),
    ) -> Result<Curve, ExplainError> {
        let n = order.len();
        let (mut deletion, mut insertion) = (Vec::new(), Vec::new());
        for k in 0..=steps {
            let m = count_at(k, steps, n);
            deletion.push(if m == 0 {
                ends.0
            } else if m == n {
                ends.1
            } else {
                self.prob(op, &order[..m], target).await?
            });
            insertion.push(if m == 0 {
                ends.1
            } else if m == n {
                ends.0
            } else {
                self.prob(op, &order[m..], target).await?
            });
        }
        let norm = |p: &[f32]| normalise_curve(p, ends.0, ends.1).map(|c| auc(&c));
        Ok(Curve {
            order: name.into(),
            deletion_auc: norm(&deletion),
            insertion_auc: norm(&insertion),
            deletion_aopc: aopc(&deletion),
            deletion,
            insertion,
        })
    }
}

/// Deletion and insertion curves for the map's order, mean attention's and `seeds` random ones.
#[allow(clippy::too_many_arguments)]
pub async fn faithfulness(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    pixels: &[f32],
    explanation: &crate::Explanation,
    op: Operator,
    steps: usize,
    seeds: usize,
) -> Result<Faithfulness, ExplainError> {
    let c = &model.config;
    if !prompt.has_image() {
        return Err(ExplainError::Input("faithfulness curves remove image patches; this prompt has no image".into()));
    }
    let (n, d) = (c.image_tokens(), c.text.hidden_size);
    // The unperturbed projector output, once (token operator).
    let mut rec = Recorder::new(ctx, "faithfulness: features");
    let feats = model.features_for(&mut rec, prompt, pixels)?.expect("the prompt has an image (checked above)");
    rec.submit();
    let features = read_f32(ctx, &feats).await?;
    let mean_feature: Vec<f32> = (0..d).map(|j| (0..n).map(|p| features[p * d + j]).sum::<f32>() / n as f32).collect();
    let mut inputs = Inputs { model, ctx, prompt, pixels, features, mean_feature, knockout: None };
    let target = explanation.target.id;
    let all: Vec<usize> = (0..n).collect();
    let ends = (inputs.prob(op, &[], target).await?, inputs.prob(op, &all, target).await?);
    let steps = steps.clamp(1, n);
    let map = inputs.curve(op, "map", &rank_desc(&explanation.patch_scores), steps, target, ends).await?;
    let mean_attention = inputs.curve(op, "mean_attention", &rank_desc(&explanation.baseline_map), steps, target, ends).await?;
    let mut random = Vec::new();
    for seed in 0..seeds as u64 {
        let mut order = all.clone();
        let mut rng = Rng::new(seed);
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        random.push(inputs.curve(op, &format!("random seed {seed}"), &order, steps, target, ends).await?);
    }
    let mean = |f: fn(&Curve) -> Option<f32>| {
        let v: Vec<f32> = random.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
    };
    let random_mean_auc = (mean(|c| c.deletion_auc), mean(|c| c.insertion_auc));
    let warning = ill_posed(ends.0, ends.1);
    Ok(Faithfulness { operator: op, target, steps, s_orig: ends.0, s_base: ends.1, map, mean_attention, random, random_mean_auc, warning })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_constructed_curves() {
        assert_eq!(auc(&[1.0, 0.5, 0.0]), 0.5);
        assert_eq!(auc(&[1.0, 1.0, 1.0, 1.0]), 1.0);
        assert_eq!(auc(&[1.0, 0.0, 0.0, 0.0, 0.0]), 0.125, "a sharp drop after the first step");
        assert_eq!(normalise_curve(&[0.8, 0.5, 0.2], 0.8, 0.2).unwrap(), vec![1.0, 0.5, 0.0]);
        assert_eq!(normalise_curve(&[0.3, 0.3], 0.3, 0.3), None);
        // Nearly equal ends: left out, with the reason.
        assert_eq!(normalise_curve(&[0.9, 0.95, 0.896], 0.9, 0.895), None);
        assert!(ill_posed(0.9, 0.895).unwrap().contains("0.9000 with every patch and 0.8950 with none"));
        assert_eq!(ill_posed(0.9, 0.2), None);
        assert!((aopc(&[0.8, 0.6, 0.2]) - 0.4).abs() < 1e-6);
        assert_eq!(Operator::parse_list("all").unwrap(), Operator::ALL);
        assert_eq!(Operator::parse_list("knockout, token").unwrap(), [Operator::Knockout, Operator::Token]);
        assert!(Operator::parse_list("both").unwrap_err().contains("expected token, pixel or knockout"));
        assert_eq!((0..=4).map(|k| count_at(k, 4, 10)).collect::<Vec<_>>(), vec![0, 3, 5, 8, 10]);
    }
}
