//! The whole answer explained: generate it greedily and explain each generated token with the
//! prompt and the tokens before it as the prefix (the paper explains only the first).
//!
//! The prompt is prefilled once; each later token is one continued pass over the same KV cache
//! (a decode step with the explanation's captures at its one row), so n tokens cost one prefill
//! and n - 1 single-row passes, not n prefills. The image positions' lens rows are the prompt
//! pass's (they do not depend on later tokens). The storage reading and the decomposition read
//! rows of earlier positions a continued pass does not hold: with either, every token gets a
//! whole prefill of its own.

use llava_lens_gpu::{GpuContext, GpuTensor, Recorder, ops};
use llava_lens_model::llama::LayerCaptures;
use llava_lens_model::{Llava, Prefill, Prompt, RunOptions};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Forward, clock, ms_since};
use crate::{ExplainError, ExplainOptions, Explanation, explain};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerExplanation {
    /// The generated tokens (without the end-of-sequence token, which is not explained).
    pub tokens: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// One explanation per token: `explanations[i]` explains `tokens[i]` after the prompt and
    /// `tokens[..i]`.
    pub explanations: Vec<Explanation>,
}

/// The prompt followed by `tokens` (the image stays where it was).
pub fn extended(prompt: &Prompt, tokens: &[u32]) -> Prompt {
    Prompt { ids: prompt.ids.iter().chain(tokens).copied().collect(), image_offset: prompt.image_offset }
}

/// Generates up to `max_tokens` greedily (stopping at `eos`) and explains each token.
/// `opts.target` and `opts.contrast` are ignored: each token is its own target.
pub async fn explain_answer(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    pixels: &[f32],
    opts: &ExplainOptions,
    max_tokens: usize,
    eos: Option<u32>,
) -> Result<AnswerExplanation, ExplainError> {
    if max_tokens == 0 {
        return Err(ExplainError::Input("the answer needs at least one token".into()));
    }
    let opts = ExplainOptions { target: None, contrast: None, ..opts.clone() };
    if opts.storage.is_some() || !opts.decompose.is_empty() {
        return explain_each_prefix(model, ctx, prompt, pixels, &opts, max_tokens, eos).await;
    }
    let (mut tokens, mut explanations) = (Vec::new(), Vec::new());
    let mut e = Engine::new(model, ctx, prompt, &opts)?;
    e.reserve = max_tokens;
    let t = clock();
    let mut fwd = e.forward(pixels).await?;
    let mut next = e.explain_forward(&fwd, ms_since(t)).await?;
    loop {
        // The explained token is the pass's top-1: the greedy answer.
        let token = next.target.id;
        if Some(token) == eos {
            break;
        }
        tokens.push(token);
        explanations.push(next);
        if tokens.len() == max_tokens || fwd.pre.cache.len >= fwd.pre.cache.capacity {
            break;
        }
        let longer = extended(prompt, &tokens);
        let mut e = Engine::new(model, ctx, &longer, &opts)?;
        e.start = fwd.pre.cache.len;
        let t = clock();
        fwd = e.forward_continued(fwd, token).await?;
        next = e.explain_forward(&fwd, ms_since(t)).await?;
    }
    Ok(AnswerExplanation { tokens, text: None, explanations })
}

impl Engine<'_> {
    /// The pass of `token` at the next position, continuing `prev`'s KV cache (which it takes),
    /// with the prompt pass's image features and lens rows.
    async fn forward_continued(&mut self, prev: Forward, token: u32) -> Result<Forward, ExplainError> {
        let Forward { pre: Prefill { mut cache, image_features, .. }, lens_rows, .. } = prev;
        if cache.len != self.start {
            return Err(ExplainError::Input(format!("a pass from position {} cannot continue a cache of {}", self.start, cache.len)));
        }
        let plan = self.plan()?;
        let mut rec = Recorder::new(self.ctx, "explain: continued");
        let id = GpuTensor::from_u32(self.ctx, &[token], &[1], "token")?;
        let x = GpuTensor::zeros(self.ctx, &[1, self.dims.hidden], "embed");
        let lm = &self.model.language_model;
        ops::embedding(&mut rec, &id, &lm.embed_tokens, &x)?;
        let mut captures = LayerCaptures::default();
        let hidden = lm.forward(&mut rec, x, &mut cache, &plan, &mut captures, None)?;
        let pre = Prefill { seq_len: self.dims.seq, hidden, cache, captures, image_features };
        self.finish_forward(rec, pre, lens_rows).await
    }
}

/// [`explain_answer`] with a whole prefill per token (the options that read earlier positions'
/// rows need one): generate, then `explain` each prefix.
async fn explain_each_prefix(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    pixels: &[f32],
    opts: &ExplainOptions,
    max_tokens: usize,
    eos: Option<u32>,
) -> Result<AnswerExplanation, ExplainError> {
    let run = RunOptions { max_new_tokens: max_tokens, eos, ..Default::default() };
    let mut tokens = model.run(ctx, prompt, pixels, &run).await?.tokens;
    if tokens.last().is_some_and(|&t| Some(t) == eos) {
        tokens.pop();
    }
    let mut explanations = Vec::with_capacity(tokens.len());
    for i in 0..tokens.len() {
        let o = ExplainOptions { target: Some(tokens[i]), ..opts.clone() };
        explanations.push(explain(model, ctx, &extended(prompt, &tokens[..i]), pixels, &o).await?);
    }
    Ok(AnswerExplanation { tokens, text: None, explanations })
}
