//! Interventions: what happens to the answer when the model is changed, the causal questions the
//! one-pass scores cannot answer (docs/METHOD.md, "Interventions").
//!
//! - [`ablation`]: zero- or mean-ablate sets of heads; the head-level deletion curve.
//! - [`patching`]: activation patching from a clean into a corrupted input, per (layer,
//!   position) of the residual stream and per (layer, head) output at the last position.
//! - [`knockout`](Intervener::knockout): the text after the image made blind to chosen patches.
//! - [`answer`]: every token of a generated answer explained with the tokens before it.
//!
//! An [`Intervener`] runs its input once ("the base run"), keeping on the GPU the residual
//! entering every layer at every position, every head's output at the last position and the KV
//! cache. An edited run then starts at the first layer an edit touches, from the base residual,
//! and where the edit is at a late position it runs only the positions from there on, reading the
//! earlier positions' keys and values from the base cache.

pub mod ablation;
pub mod answer;
mod batched;
pub mod patching;
pub mod zoom;

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_gpu::{GpuContext, GpuTensor, Recorder, ops, read_f32, read_u32};
use llava_lens_model::llama::{KvCache, LayerCaptures};
use llava_lens_model::{Edits, Llava, LlavaTokenizer, Prompt};
use serde::{Deserialize, Serialize};

use crate::ExplainError;
use crate::engine::TOP_TOKENS;
use crate::explanation::TokenInfo;

/// The `schema` of every intervention document (docs/INTERVENTIONS.md): `ablation`, `patching`
/// and `answer` documents, each with a `kind` saying which.
pub const SCHEMA: &str = "llava-lens.intervention/1";

/// The answer distribution of one run: the target's (and contrast's) log-probability and the
/// model's top tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub target: TokenInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrast: Option<TokenInfo>,
    /// `logit(target) - logit(contrast)`, which equals the difference of their log-probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_diff: Option<f32>,
    pub top: Vec<TokenInfo>,
}

impl Outcome {
    /// p(target).
    pub fn prob(&self) -> f32 {
        self.target.log_prob.exp()
    }

    /// Fills the tokens' texts.
    pub fn name_tokens(&mut self, tok: &LlavaTokenizer) {
        for t in std::iter::once(&mut self.target).chain(self.contrast.as_mut()).chain(self.top.iter_mut()) {
            t.text = tok.token(t.id);
        }
    }
}

/// The explained token and, for a logit difference, the token it is contrasted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub target: u32,
    pub contrast: Option<u32>,
}

impl Targets {
    fn ids(&self) -> Vec<u32> {
        std::iter::once(self.target).chain(self.contrast).collect()
    }
}

/// What the base run leaves on the GPU.
#[derive(Debug)]
struct Base {
    /// The residual entering each layer, every position: `[seq, hidden]`.
    resid: Vec<GpuTensor>,
    /// Each layer's per-head outputs at the last position: `[heads * head_dim]`.
    z_last: Vec<GpuTensor>,
    cache: KvCache,
    /// The last layer's output, `[seq, hidden]`.
    hidden: GpuTensor,
    /// Positions from here on in `cache` were overwritten by a suffix run (they hold an edited
    /// run's keys and values); a suffix run from `p` needs the rows before `p` clean.
    clean_before: usize,
    top: Vec<(u32, f32)>,
}

/// One input (prompt and image) to intervene on.
#[derive(Debug)]
pub struct Intervener<'a> {
    pub model: &'a Llava,
    pub ctx: &'a GpuContext,
    pub prompt: Prompt,
    /// The projector's output, computed once.
    features: Option<GpuTensor>,
    pub seq: usize,
    base: Base,
    /// Runs recorded so far (each a forward pass, whole or partial): the cost of an analysis.
    pub runs: usize,
    /// Mean ablation's fill: each layer's per-head output averaged over the positions.
    z_means: std::collections::BTreeMap<usize, Vec<f32>>,
    /// Most rows one batched pass of patching cells stacks (crates/explain/src/intervene/batched.rs).
    pub rows_per_pass: usize,
}

impl<'a> Intervener<'a> {
    /// Checks the prompt, computes the image features and runs the base pass.
    pub async fn new(model: &'a Llava, ctx: &'a GpuContext, prompt: &Prompt, pixels: &[f32]) -> Result<Self, ExplainError> {
        let c = &model.config;
        c.check_prompt(prompt, 0).map_err(ExplainError::Input)?;
        let mut rec = Recorder::new(ctx, "interventions: image features");
        let features = model.features_for(&mut rec, prompt, pixels)?;
        rec.submit();
        let seq = c.prompt_length(prompt);
        let base = Self::base_run(model, ctx, prompt, features.clone(), seq).await?;
        Ok(Intervener {
            model,
            ctx,
            prompt: prompt.clone(),
            features,
            seq,
            base,
            runs: 1,
            z_means: Default::default(),
            rows_per_pass: batched::ROWS_PER_PASS,
        })
    }

    async fn base_run(
        model: &Llava,
        ctx: &GpuContext,
        prompt: &Prompt,
        features: Option<GpuTensor>,
        seq: usize,
    ) -> Result<Base, ExplainError> {
        let t = &model.config.text;
        let (layers, heads, hd, d) = (t.num_hidden_layers, t.num_attention_heads, t.head_dim, t.hidden_size);
        let last = seq - 1;
        let all: Vec<usize> = (0..seq).collect();
        let all_heads: Vec<usize> = (0..heads).collect();
        let mut plan = CapturePlan::new();
        for l in 0..layers {
            plan.add(Hook::resid_pre(l), &all, &[])?;
            plan.add(Hook::z(l), &[last], &all_heads)?;
        }
        let mut rec = Recorder::new(ctx, "interventions: base run");
        let pre = model.prefill_with_features(&mut rec, prompt, features, &plan, 0, None)?;
        let (_, ids, lps) = model.head(&mut rec, &pre.hidden, last, TOP_TOKENS.min(t.vocab_size))?;
        let mut resid = Vec::with_capacity(layers);
        let mut z_last = Vec::with_capacity(layers);
        for l in 0..layers {
            let cap = pre.captures.row(Hook::resid_pre(l))?;
            debug_assert_eq!(cap.rows, all);
            resid.push(cap.values.clone());
            // [1, heads, head_dim]: the capture's own buffer, kept.
            z_last.push(pre.captures.attention(l)?.z.clone());
        }
        debug_assert!(resid.iter().all(|r| r.len() == seq * d) && z_last.iter().all(|z| z.len() == heads * hd));
        rec.submit();
        let top: Vec<(u32, f32)> = read_u32(ctx, &ids).await?.into_iter().zip(read_f32(ctx, &lps).await?).collect();
        llava_lens_model::check_top("the base run", &top, t.vocab_size)?;
        Ok(Base { resid, z_last, cache: pre.cache, hidden: pre.hidden, clean_before: seq, top })
    }

    /// The model's own top token of the base run.
    pub fn prediction(&self) -> u32 {
        self.base.top[0].0
    }

    /// Where the image's positions start and how many there are (0, 0 for a text-only prompt).
    pub fn image_span(&self) -> (usize, usize) {
        match self.prompt.image_offset {
            Some(off) => (off, self.model.config.image_tokens()),
            None => (0, 0),
        }
    }

    /// The base run's outcome (no edits).
    pub async fn base_outcome(&mut self, targets: Targets) -> Result<Outcome, ExplainError> {
        self.run(&Edits::default(), targets).await
    }

    /// One run with `edits`, from the first layer they touch (all positions).
    pub async fn run(&mut self, edits: &Edits, targets: Targets) -> Result<Outcome, ExplainError> {
        self.run_from(edits, 0, None, targets).await
    }

    /// One run with `edits` (and optionally a key mask) over positions `from..`, starting at the
    /// first layer an edit touches (layer 0 with a mask and no edits). Positions before `from`
    /// are read from the base cache, so edits and the mask must leave them unchanged.
    pub(crate) async fn run_from(
        &mut self,
        edits: &Edits,
        from: usize,
        mask: Option<(&[u32], usize)>,
        targets: Targets,
    ) -> Result<Outcome, ExplainError> {
        let ctx = self.ctx;
        let vocab = self.model.config.text.vocab_size;
        self.check_targets(targets)?;
        if from > self.base.clean_before {
            self.rebuild().await?;
        }
        let mut rec = Recorder::new(ctx, "interventions: edited run");
        let (h, row) = self.record(&mut rec, edits, from, mask)?;
        let (_, ids, lps) = self.model.head(&mut rec, &h, row, TOP_TOKENS.min(vocab))?;
        let own = self.model.target_log_probs(&mut rec, &h, row, &targets.ids())?;
        rec.submit();
        let top: Vec<(u32, f32)> = read_u32(ctx, &ids).await?.into_iter().zip(read_f32(ctx, &lps).await?).collect();
        llava_lens_model::check_top("the edited run", &top, vocab)?;
        let lp = read_f32(ctx, &own).await?;
        Ok(outcome(top, &lp, targets))
    }

    pub(crate) fn check_targets(&self, targets: Targets) -> Result<(), ExplainError> {
        let vocab = self.model.config.text.vocab_size;
        match targets.ids().into_iter().find(|&id| id as usize >= vocab) {
            Some(id) => Err(ExplainError::Input(format!("token id {id} is outside the vocabulary of {vocab}"))),
            None => Ok(()),
        }
    }

    /// Records one edited run (the caller made sure the cache's rows before `from` are clean);
    /// returns the last layer's output and the row of the last position in it.
    pub(crate) fn record(
        &mut self,
        rec: &mut Recorder<'_>,
        edits: &Edits,
        from: usize,
        mask: Option<(&[u32], usize)>,
    ) -> Result<(GpuTensor, usize), ExplainError> {
        let ctx = self.ctx;
        let t = &self.model.config.text;
        let first = if mask.is_some() { 0 } else { edits.first_layer().unwrap_or(t.num_hidden_layers) };
        if first == t.num_hidden_layers {
            // Nothing changes: the base run's own output.
            return Ok((self.base.hidden.clone(), self.seq - 1));
        }
        let rows = self.seq - from;
        let x = GpuTensor::zeros(ctx, &[rows, t.hidden_size], "edited residual");
        rec.copy_rows(&self.base.resid[first], from, &x, 0, rows)?;
        let keys = match mask {
            Some((blocked, _)) => Some(GpuTensor::from_u32(ctx, blocked, &[blocked.len()], "knocked-out keys")?),
            None => None,
        };
        let mask = keys.as_ref().zip(mask).map(|(keys, (_, from))| ops::KeyMask { keys, from });
        self.base.cache.len = from;
        self.base.clean_before = self.base.clean_before.min(from);
        let lm = &self.model.language_model;
        let h = lm.forward_edited(rec, x, first, &mut self.base.cache, &CapturePlan::new(), &mut LayerCaptures::default(), mask, edits);
        self.base.cache.len = self.seq;
        self.runs += 1;
        Ok((h?, rows - 1))
    }

    /// Re-runs the base pass to restore the cache after suffix runs overwrote it.
    pub(crate) async fn rebuild(&mut self) -> Result<(), ExplainError> {
        self.base = Self::base_run(self.model, self.ctx, &self.prompt, self.features.clone(), self.seq).await?;
        self.runs += 1;
        Ok(())
    }

    /// p(answer) with the text after the image unable to attend to `patches` (indices into the
    /// image's patches): the faithfulness knockout for a hand-picked set. Only the text after the
    /// image is re-run.
    pub async fn knockout(&mut self, patches: &[usize], targets: Targets) -> Result<Outcome, ExplainError> {
        let (off, n) = self.image_span();
        if n == 0 {
            return Err(ExplainError::Input("a patch knockout needs an image in the prompt".into()));
        }
        if let Some(&p) = patches.iter().find(|&&p| p >= n) {
            return Err(ExplainError::Input(format!("patch {p} does not exist: the image has {n} patches (0..={})", n - 1)));
        }
        let mut blocked = vec![0u32; self.seq];
        for &p in patches {
            blocked[off + p] = 1;
        }
        let from = off + n;
        if from >= self.seq {
            return Err(ExplainError::Input("the prompt ends with the image: no text after it could be blind to its patches".into()));
        }
        self.run_from(&Edits::default(), from, Some((&blocked, from)), targets).await
    }
}

fn outcome(top: Vec<(u32, f32)>, lp: &[f32], targets: Targets) -> Outcome {
    let token = |(id, log_prob): (u32, f32)| TokenInfo { id, text: None, log_prob };
    let contrast = targets.contrast.map(|c| token((c, lp[1])));
    Outcome {
        target: token((targets.target, lp[0])),
        logit_diff: contrast.as_ref().map(|c| lp[0] - c.log_prob),
        contrast,
        top: top.into_iter().map(token).collect(),
    }
}
