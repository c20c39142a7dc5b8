//! The method on the GPU, as named steps ([`explain`] runs them in order):
//!
//! 1. [`Engine::plan`]: the captures the scores need, chosen before anything is encoded;
//! 2. [`Engine::forward`]: one prefill with that plan, the model's top tokens from the same pass;
//! 3. [`Engine::head_scores`]: every head, attention layer and MLP as rows of one batched
//!    vocabulary projection;
//! 4. [`Engine::head_maps`]: each mapped head's position scores (the paper's map for the best);
//! 5. [`Engine::logit_lens`] and [`Engine::decompose`] (crates/explain/src/lens.rs), and
//!    [`Engine::storage`] (crates/explain/src/storage.rs);
//! 6. [`Engine::assemble`]: the [`Explanation`].
//!
//! Only log-probabilities and small per-head sums come back (kilobytes at 7B shapes).

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_gpu::{GpuContext, GpuTensor, Recorder, ops};
use llava_lens_model::{Llava, ModelError, Prefill, Prompt};
use thiserror::Error;

use crate::explanation::{Explanation, HeadMap, HeadScore, LogitLens, SCHEMA, Timings, TokenInfo, TopKMap};
use crate::method::{head_score, importance, normalise_map, position_score, rank_heads};
pub use crate::options::{ExplainOptions, MAX_LENS_K, TOP_TOKENS};
use crate::projection::{Reader, project, row_scores};

#[derive(Debug, Error)]
pub enum ExplainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] llava_lens_gpu::GpuError),
    #[error("{0}")]
    Input(String),
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn clock() -> Option<std::time::Instant> {
    Some(std::time::Instant::now())
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn clock() -> Option<std::time::Instant> {
    None
}

pub(crate) fn ms_since(t: Option<std::time::Instant>) -> Option<f64> {
    t.map(|t| t.elapsed().as_secs_f64() * 1e3)
}

/// The sizes every step uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub vocab: usize,
    /// Positions with the image spliced in, and the last one (the scored query).
    pub seq: usize,
    pub last: usize,
    /// Where the image's positions start, and how many.
    pub image_offset: usize,
    pub image_tokens: usize,
}

/// What the forward pass leaves for the scores, on the GPU: the prefill (KV cache, captures,
/// projector output) and, at the last position, the residual entering each layer (x^l), after
/// each layer's attention (r^l) and after the last layer (x^L).
pub(crate) struct Forward {
    pub pre: Prefill,
    /// The image positions' residual entering the lens layer (`[image tokens, d]`), when the
    /// residual lens is on: it depends only on the prompt, so a continued pass keeps the prompt
    /// pass's.
    pub lens_rows: Option<GpuTensor>,
    pub resid_pre: Vec<GpuTensor>,
    pub resid_mid: Vec<GpuTensor>,
    pub resid_final: GpuTensor,
    /// The model's own top next tokens `(id, log-probability)`.
    pub top: Vec<(u32, f32)>,
}

/// The scores of [`Engine::head_scores`].
struct Scores {
    heads: Vec<Vec<f32>>,
    attention_layers: Vec<f32>,
    mlp_layers: Vec<f32>,
    /// Log-probability of each projected residual x^l (the baseline of layer l's components).
    entering: Vec<f32>,
    /// Summed attention of the last query over every layer, `[heads, seq]`.
    attention_sum: Vec<f32>,
    /// The targets' log-probabilities under the model's own head.
    target_log_probs: Vec<f32>,
}

/// Each mapped head's per-position scores, and the best head's attention of the last query.
struct Maps {
    heads: Vec<HeadScore>,
    positions: Vec<Vec<f32>>,
    best_attention: Vec<f32>,
}

/// One explanation in progress.
pub(crate) struct Engine<'a> {
    pub model: &'a Llava,
    pub ctx: &'a GpuContext,
    pub prompt: &'a Prompt,
    pub opts: &'a ExplainOptions,
    pub dims: Dims,
    pub reader: Reader<'a>,
    /// The explained token, then the contrast token if any.
    targets: Vec<u32>,
    /// Sequence position of the pass's first row: 0 for a whole prefill, the KV cache's length
    /// for a pass that continues one (the whole answer, crates/explain/src/intervene/answer.rs).
    /// Capture rows and output rows count from it.
    pub start: usize,
    /// KV-cache rows a whole prefill reserves for continued passes.
    pub reserve: usize,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(model: &'a Llava, ctx: &'a GpuContext, prompt: &'a Prompt, opts: &'a ExplainOptions) -> Result<Self, ExplainError> {
        let c = &model.config;
        let t = &c.text;
        let seq = c.prompt_length(prompt);
        opts.check(c, seq)?;
        c.check_prompt(prompt, 0).map_err(ExplainError::Input)?;
        let dims = Dims {
            layers: t.num_hidden_layers,
            heads: t.num_attention_heads,
            kv_heads: t.num_key_value_heads,
            head_dim: t.head_dim,
            hidden: t.hidden_size,
            vocab: t.vocab_size,
            seq,
            last: seq - 1,
            // A text-only prompt has no image positions: its maps are empty, its position scores
            // cover the text.
            image_offset: prompt.image_offset.unwrap_or(0),
            image_tokens: if prompt.has_image() { c.image_tokens() } else { 0 },
        };
        Ok(Engine { model, ctx, prompt, opts, dims, reader: Reader { ctx, bytes: 0 }, targets: Vec::new(), start: 0, reserve: 0 })
    }

    /// The last position's row within the pass.
    pub(crate) fn last_in_pass(&self) -> usize {
        self.dims.last - self.start
    }

    fn image_rows(&self) -> Vec<usize> {
        (self.dims.image_offset..self.dims.image_offset + self.dims.image_tokens).collect()
    }

    /// Step 1: at the last position, the residual entering each layer, after its attention and
    /// after the last layer, each layer's per-head outputs and attention pattern; the image
    /// positions' residual at the lens layer; the attention and MLP outputs at the positions to
    /// decompose.
    pub(crate) fn plan(&self) -> Result<CapturePlan, ExplainError> {
        let Dims { layers, heads, .. } = self.dims;
        let last = self.last_in_pass();
        let all_heads: Vec<usize> = (0..heads).collect();
        let mut plan = CapturePlan::new();
        for l in 0..layers {
            plan.add(Hook::resid_pre(l), &[last], &[])?;
            plan.add(Hook::resid_mid(l), &[last], &[])?;
            plan.add(Hook::z(l), &[last], &all_heads)?;
            plan.add(Hook::pattern(l), &[last], &all_heads)?;
        }
        plan.add(Hook::resid_post(layers - 1), &[last], &[])?;
        if self.start > 0 {
            // A continued pass holds only its own rows; its lens rows are the prompt pass's
            // (`Forward::lens_rows`).
            if self.opts.storage.is_some() || !self.opts.decompose.is_empty() {
                return Err(ExplainError::Input(
                    "the storage reading and the decomposition read earlier positions: they need a whole prefill".into(),
                ));
            }
            return Ok(plan);
        }
        if let (Some(l), true) = (self.opts.lens_layer, self.opts.lens_k > 0 && self.dims.image_tokens > 0) {
            plan.add(Hook::resid_pre(l), &self.image_rows(), &[])?;
        }
        if self.opts.storage.is_some() {
            // The best heads are known only after the pass: every layer's input, every position.
            let all: Vec<usize> = (0..self.dims.seq).collect();
            for l in 0..layers {
                plan.add(Hook::resid_pre(l), &all, &[])?;
            }
        }
        if !self.opts.decompose.is_empty() {
            for l in 0..self.opts.decompose_layer.unwrap_or(layers) {
                plan.add(Hook::attn_out(l), &self.opts.decompose, &[])?;
                plan.add(Hook::mlp_out(l), &self.opts.decompose, &[])?;
            }
        }
        Ok(plan)
    }

    /// Step 2: the prefill, the model's top tokens from the same pass, and the last position's
    /// residual rows in tensors of their own. Non-finite logits are an error that names the first
    /// layer whose input was already non-finite.
    pub(crate) async fn forward(&mut self, pixels: &[f32]) -> Result<Forward, ExplainError> {
        let plan = self.plan()?;
        let mut rec = Recorder::new(self.ctx, "explain: forward");
        let pre = self.model.prefill(&mut rec, self.prompt, pixels, &plan, self.reserve)?;
        let lens_rows = match self.opts.lens_layer.filter(|_| self.opts.lens_k > 0 && self.dims.image_tokens > 0) {
            Some(layer) => {
                let cap = pre.captures.row(Hook::resid_pre(layer))?;
                let first = cap
                    .rows
                    .iter()
                    .position(|&r| r == self.dims.image_offset)
                    .ok_or_else(|| ExplainError::Input(format!("{}: the image rows were not captured", Hook::resid_pre(layer))))?;
                let x = GpuTensor::zeros(self.ctx, &[self.dims.image_tokens, self.dims.hidden], "lens rows");
                rec.copy_rows(&cap.values, first, &x, 0, self.dims.image_tokens)?;
                Some(x)
            }
            None => None,
        };
        self.finish_forward(rec, pre, lens_rows).await
    }

    /// The model's top tokens and the last position's residual rows of a recorded pass (whole or
    /// continued), submitted and checked.
    pub(crate) async fn finish_forward(
        &mut self,
        mut rec: Recorder<'_>,
        pre: Prefill,
        lens_rows: Option<GpuTensor>,
    ) -> Result<Forward, ExplainError> {
        let Dims { layers, vocab, .. } = self.dims;
        let (_, top_ids, top_lp) = self.model.head(&mut rec, &pre.hidden, self.last_in_pass(), TOP_TOKENS.min(vocab))?;
        let resid_pre = (0..layers).map(|l| self.last_row(&mut rec, &pre, Hook::resid_pre(l))).collect::<Result<Vec<_>, _>>()?;
        let resid_mid = (0..layers).map(|l| self.last_row(&mut rec, &pre, Hook::resid_mid(l))).collect::<Result<Vec<_>, _>>()?;
        let resid_final = self.last_row(&mut rec, &pre, Hook::resid_post(layers - 1))?;
        let parts = self.reader.submit(rec, &[&top_ids, &top_lp]).await?;
        let top: Vec<(u32, f32)> = parts.u32(0).into_iter().zip(parts.f32(1)).collect();
        if let Err(ModelError::NonFinite { stage, detail }) = llava_lens_model::check_top("the forward pass", &top, vocab) {
            let cause = self.locate_non_finite(&resid_pre, &resid_final).await;
            return Err(ModelError::non_finite(stage, format!("{detail}; {cause}")).into());
        }
        Ok(Forward { pre, lens_rows, resid_pre, resid_mid, resid_final, top })
    }

    /// The last position's row of a residual capture, in a `[d]` tensor of its own.
    fn last_row(&self, rec: &mut Recorder<'_>, pre: &Prefill, hook: Hook) -> Result<GpuTensor, ExplainError> {
        let cap = pre.captures.row(hook)?;
        let last = self.last_in_pass();
        let i = cap
            .rows
            .iter()
            .position(|&r| r == last)
            .ok_or_else(|| ExplainError::Input(format!("{hook}: the last position was not captured")))?;
        let t = GpuTensor::zeros(self.ctx, &[self.dims.hidden], "residual row");
        rec.copy_rows(&cap.values, i, &t, 0, 1)?;
        Ok(t)
    }

    /// Where non-finite logits came from: the first residual at the last position that is
    /// already non-finite (read back only on this failure path).
    async fn locate_non_finite(&mut self, resid_pre: &[GpuTensor], resid_final: &GpuTensor) -> String {
        for (l, row) in resid_pre.iter().chain(std::iter::once(resid_final)).enumerate() {
            if let Ok(v) = self.reader.f32(row).await {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    let which = if l < resid_pre.len() {
                        format!("the residual entering decoder layer {l}")
                    } else {
                        "the last decoder layer's output".into()
                    };
                    return format!("{which} is the first non-finite one (element {i}: {})", v[i]);
                }
            }
        }
        "every residual at the last position is finite: the final norm or lm_head overflowed".into()
    }

    /// Step 3: every head, attention layer and MLP scored by one projection whose rows are
    /// `[l * heads + h] = x^l + o^{l,h}`, then `x^l` (layers rows), `r^l` (layers rows), `x^L`.
    async fn head_scores(&mut self, fwd: &Forward) -> Result<Scores, ExplainError> {
        let Dims { layers, heads, head_dim: hd, hidden: d, seq, .. } = self.dims;
        let mut rec = Recorder::new(self.ctx, "explain: head scores");
        let n_rows = layers * heads + 2 * layers + 1;
        let rows = GpuTensor::zeros(self.ctx, &[n_rows, d], "projection rows");
        let attention_sum = GpuTensor::zeros(self.ctx, &[heads * seq], "attention sum");
        for l in 0..layers {
            let cap = fwd.pre.captures.attention(l)?;
            let z_block = GpuTensor::zeros(self.ctx, &[heads, heads * hd], "z block");
            ops::scatter_heads(&mut rec, &cap.z.view(self.ctx, 0, &[heads * hd])?, hd, &z_block)?;
            let head_out = self.model.language_model.layers[l].self_attn.o_proj.forward(&mut rec, &z_block)?;
            ops::bias_add(&mut rec, &head_out, &fwd.resid_pre[l])?;
            rec.copy_rows(&head_out, 0, &rows, l * heads, heads)?;
            rec.copy_rows(&fwd.resid_pre[l], 0, &rows, layers * heads + l, 1)?;
            rec.copy_rows(&fwd.resid_mid[l], 0, &rows, layers * heads + layers + l, 1)?;
            ops::residual_add(&mut rec, &attention_sum, &cap.pattern.view(self.ctx, 0, &[heads * seq])?)?;
        }
        rec.copy_rows(&fwd.resid_final, 0, &rows, n_rows - 1, 1)?;
        let lp = project(self.model, &mut rec, &rows, &fwd.resid_final, &self.targets)?;
        let own = self.model.target_log_probs(&mut rec, &fwd.pre.hidden, self.last_in_pass(), &self.targets)?;
        let parts = self.reader.submit(rec, &[&lp, &attention_sum, &own]).await?;
        let scores = row_scores(&parts.f32(0), self.targets.len() > 1);
        let (attention_sum, target_log_probs) = (parts.f32(1), parts.f32(2));
        check_scores("the head and layer scores", &scores)?;
        check_scores("the attention sums", &attention_sum)?;
        check_scores("the target's log-probability", &target_log_probs)?;
        let entering: Vec<f32> = scores[layers * heads..layers * heads + layers].to_vec();
        let mid = |l: usize| scores[layers * heads + layers + l];
        let after = |l: usize| if l + 1 < layers { entering[l + 1] } else { scores[n_rows - 1] };
        Ok(Scores {
            heads: (0..layers).map(|l| (0..heads).map(|h| head_score(scores[l * heads + h], entering[l])).collect()).collect(),
            attention_layers: (0..layers).map(|l| importance(mid(l), entering[l])).collect(),
            mlp_layers: (0..layers).map(|l| importance(after(l), mid(l))).collect(),
            entering,
            attention_sum,
            target_log_probs,
        })
    }

    /// Step 4, one head: `u_j = alpha_j v_j W_O^h` for every position j, each added to x^l and
    /// projected; with `attention`, the head's attention of the last query comes back too. Head
    /// h reads key/value head `h / (heads / kv_heads)` (grouped-query attention).
    pub(crate) async fn position_scores(
        &mut self,
        fwd: &Forward,
        layer: usize,
        head: usize,
        entering: f32,
        attention: bool,
    ) -> Result<(Vec<f32>, Vec<f32>), ExplainError> {
        let mut rec = Recorder::new(self.ctx, "explain: positions");
        let (alpha, rows) = self.value_outputs(&mut rec, fwd, layer, head)?;
        ops::bias_add(&mut rec, &rows, &fwd.resid_pre[layer])?;
        let lp = project(self.model, &mut rec, &rows, &fwd.resid_final, &self.targets)?;
        let wanted = if attention { vec![&lp, &alpha] } else { vec![&lp] };
        let parts = self.reader.submit(rec, &wanted).await?;
        let s = row_scores(&parts.f32(0), self.targets.len() > 1);
        check_scores(&format!("the position scores of head {layer}.{head}"), &s)?;
        let attention = if attention { parts.f32(1) } else { Vec::new() };
        Ok((s.iter().map(|&v| position_score(v, entering)).collect(), attention))
    }

    /// Head (layer, head)'s value-output vector of every position, `u_j = alpha_j v_j W_O^h`
    /// (`[seq, d]`), and the last query's attention `alpha` (`[seq]`) it is weighted by (recorded).
    pub(crate) fn value_outputs(
        &self,
        rec: &mut Recorder<'_>,
        fwd: &Forward,
        layer: usize,
        head: usize,
    ) -> Result<(GpuTensor, GpuTensor), ExplainError> {
        let Dims { heads, kv_heads, head_dim: hd, seq, .. } = self.dims;
        let cap = fwd.pre.captures.attention(layer)?;
        let alpha = GpuTensor::zeros(self.ctx, &[seq], "alpha");
        rec.copy_elements(&cap.pattern, head * seq, &alpha, 0, seq)?;
        let u = GpuTensor::zeros(self.ctx, &[seq, heads * hd], "alpha v");
        let kv_head = head / (heads / kv_heads);
        ops::weighted_values(rec, &fwd.pre.cache.values[layer], kv_heads * hd, &alpha, head, kv_head, heads, hd, &u)?;
        let rows = self.model.language_model.layers[layer].self_attn.o_proj.forward(rec, &u)?;
        Ok((alpha, rows))
    }

    /// Step 4: the position scores of the top k heads (best first; the first is the paper's
    /// map) and of every head asked for besides them.
    async fn head_maps(&mut self, fwd: &Forward, scores: &Scores, ranked: &[HeadScore]) -> Result<Maps, ExplainError> {
        let k = self.opts.top_k_heads.min(ranked.len());
        let extra = self.opts.head_maps.iter().filter(|&&(l, h)| !ranked[..k].iter().any(|r| (r.layer, r.head) == (l, h)));
        let heads: Vec<HeadScore> = ranked[..k]
            .iter()
            .copied()
            .chain(extra.map(|&(layer, head)| HeadScore { layer, head, score: scores.heads[layer][head] }))
            .collect();
        let mut positions = Vec::with_capacity(heads.len());
        let mut best_attention = Vec::new();
        for (i, h) in heads.iter().enumerate() {
            let (s, attention) = self.position_scores(fwd, h.layer, h.head, scores.entering[h.layer], i == 0).await?;
            positions.push(s);
            if i == 0 {
                best_attention = attention;
            }
        }
        Ok(Maps { heads, positions, best_attention })
    }

    /// Step 6: the explanation document from what the steps computed.
    fn assemble(
        &self,
        fwd: &Forward,
        scores: Scores,
        ranked: Vec<HeadScore>,
        maps: Maps,
        logit_lens: Option<LogitLens>,
        decomposition: Vec<crate::explanation::Decomposition>,
        storage: Option<crate::explanation::Storage>,
        timings_ms: Timings,
    ) -> Explanation {
        let Dims { layers, heads, seq, image_offset: off, image_tokens: n_img, .. } = self.dims;
        let image = |s: &[f32]| s[off..off + n_img].to_vec();
        let k = self.opts.top_k_heads.min(ranked.len());
        let token = |(id, log_prob): (u32, f32)| TokenInfo { id, text: None, log_prob };
        let patch_scores = image(&maps.positions[0]);
        let denom = (layers * heads) as f32;
        let baseline_map = (0..n_img).map(|p| (0..heads).map(|h| scores.attention_sum[h * seq + off + p]).sum::<f32>() / denom).collect();
        Explanation {
            schema: SCHEMA.into(),
            model: self.opts.model_name.clone(),
            dtype: self.model.dtype.name().to_string(),
            prompt_ids: self.prompt.ids.clone(),
            image_offset: off,
            image_tokens: n_img,
            grid: if n_img > 0 { self.model.config.vision.as_ref().map_or(0, |v| v.grid()) } else { 0 },
            sequence_length: seq,
            prediction: fwd.top[0].0,
            top: fwd.top.iter().copied().map(token).collect(),
            target: token((self.targets[0], scores.target_log_probs[0])),
            contrast: self.targets.get(1).map(|&c| token((c, scores.target_log_probs[1]))),
            attention_layer_scores: scores.attention_layers,
            mlp_layer_scores: scores.mlp_layers,
            top_heads: ranked.iter().take(10).copied().collect(),
            best_head: ranked[0],
            patch_map: normalise_map(&patch_scores),
            position_scores: maps.positions[0].clone(),
            position_attention: maps.best_attention,
            top_k_heads_map: (k > 1).then(|| TopKMap {
                k,
                heads: ranked[..k].to_vec(),
                patch_scores: (0..n_img).map(|p| maps.positions[..k].iter().map(|s| s[off + p]).sum()).collect(),
            }),
            head_maps: maps.heads.iter().zip(&maps.positions).map(|(&head, s)| HeadMap { head, patch_scores: image(s) }).collect(),
            head_scores: scores.heads,
            patch_scores,
            baseline_map,
            logit_lens,
            decomposition,
            storage,
            timings_ms,
            bytes_read_back: self.reader.bytes,
            logit_lens_text: None,
            decomposition_text: None,
            image: None,
            crop: None,
            legend: None,
        }
    }
}

/// An error naming `stage` if any score is NaN or infinite (the logits were finite, so the
/// scores' own projection overflowed).
fn check_scores(stage: &str, scores: &[f32]) -> Result<(), ExplainError> {
    match scores.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(ModelError::non_finite(stage, format!("score {i} of {} is {}", scores.len(), scores[i])).into()),
    }
}

/// Explains the model's next token after `prompt` with the image `pixels` (docs/METHOD.md); a
/// text-only prompt takes no pixels and gets position scores over its text, no image maps.
pub async fn explain(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    pixels: &[f32],
    opts: &ExplainOptions,
) -> Result<Explanation, ExplainError> {
    let mut e = Engine::new(model, ctx, prompt, opts)?;
    let t0 = clock();
    let fwd = e.forward(pixels).await?;
    e.explain_forward(&fwd, ms_since(t0)).await
}

impl Engine<'_> {
    /// Steps 3 to 6 on a pass's [`Forward`] (which took `forward` ms).
    pub(crate) async fn explain_forward(&mut self, fwd: &Forward, forward: Option<f64>) -> Result<Explanation, ExplainError> {
        self.targets = std::iter::once(self.opts.target.unwrap_or(fwd.top[0].0)).chain(self.opts.contrast).collect();
        let t1 = clock();
        let scores = self.head_scores(fwd).await?;
        let ranked = rank_heads(&scores.heads);
        let head_scores = ms_since(t1);
        let t2 = clock();
        let maps = self.head_maps(fwd, &scores, &ranked).await?;
        let position_scores = ms_since(t2);
        let decomposition = self.decompose(fwd).await?;
        let logit_lens = self.logit_lens(fwd).await?;
        let mapped: Vec<(HeadScore, &[f32])> = maps.heads.iter().copied().zip(maps.positions.iter().map(Vec::as_slice)).collect();
        let storage = self.storage(fwd, &ranked, &mapped, &scores.entering).await?;
        let timings = Timings { forward, head_scores, position_scores };
        Ok(self.assemble(fwd, scores, ranked, maps, logit_lens, decomposition, storage, timings))
    }
}

/// The last query's attention of head (layer, head) over every position, from one prefill that
/// captures nothing else: the paper's query-key reading, run again on an edited question (the
/// question naming another object) to see how much of it the same positions still draw.
pub async fn last_query_attention(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    pixels: &[f32],
    layer: usize,
    head: usize,
) -> Result<Vec<f32>, ExplainError> {
    let c = &model.config;
    let (layers, heads) = (c.text.num_hidden_layers, c.text.num_attention_heads);
    if layer >= layers || head >= heads {
        return Err(ExplainError::Input(format!("head {layer}.{head} does not exist: the model has {layers} layers of {heads} heads")));
    }
    c.check_prompt(prompt, 0).map_err(ExplainError::Input)?;
    let last = c.prompt_length(prompt) - 1;
    let mut plan = CapturePlan::new();
    plan.add(Hook::pattern(layer), &[last], &[head])?;
    let mut rec = Recorder::new(ctx, "attention of the last query");
    let pre = model.prefill(&mut rec, prompt, pixels, &plan, 0)?;
    rec.submit();
    let pattern = &pre.captures.attention(layer)?.pattern;
    let alpha = Reader { ctx, bytes: 0 }.f32(pattern).await?;
    check_scores(&format!("the attention of head {layer}.{head}"), &alpha)?;
    Ok(alpha)
}
