//! The whole answer explained: generate it greedily, then explain each generated token with the
//! prompt and the tokens before it as the prefix (the paper explains only the first).

use llava_lens_gpu::GpuContext;
use llava_lens_model::{Llava, Prompt, RunOptions};
use serde::{Deserialize, Serialize};

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
    let run = RunOptions { max_new_tokens: max_tokens, eos, ..Default::default() };
    let mut tokens = model.run(ctx, prompt, pixels, &run).await?.tokens;
    if tokens.last().is_some_and(|&t| Some(t) == eos) {
        tokens.pop();
    }
    let mut explanations = Vec::with_capacity(tokens.len());
    for i in 0..tokens.len() {
        let o = ExplainOptions { target: Some(tokens[i]), contrast: None, ..opts.clone() };
        explanations.push(explain(model, ctx, &extended(prompt, &tokens[..i]), pixels, &o).await?);
    }
    Ok(AnswerExplanation { tokens, text: None, explanations })
}
