//! The method on the GPU. One prefill with a capture plan (residual entering each layer, after
//! attention and after the last layer, per-head outputs and the attention row of the last query,
//! all at the last position); then every score is one batched vocabulary projection: rows built
//! on the GPU, the frozen-scale final norm, lm_head, and log-softmax read at the target. Only the
//! log-probabilities and the small per-head attention sums come back (kilobytes at 7B shapes).

use llava_lens_gpu::capture::{CapturePlan, HookPoint};
use llava_lens_gpu::{GpuContext, GpuTensor, Recorder, ops, read_f32, read_u32};
use llava_lens_model::{Llava, ModelError, Prompt};
use thiserror::Error;

use crate::method::{Explanation, HeadScore, PROJECTION_EPS, SCHEMA, Timings, TokenInfo, importance, normalise_map, rank_heads};

#[derive(Debug, Error)]
pub enum ExplainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] llava_lens_gpu::GpuError),
    #[error("{0}")]
    Input(String),
}

#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// Token to explain; the model's top-1 next token when None.
    pub target: Option<u32>,
    /// "Why target rather than contrast": scores of the logit difference.
    pub contrast: Option<u32>,
    /// Also sum the patch scores of the top k heads (extension; 1 = the paper's single head; more
    /// than the model has means all of them).
    pub top_k_heads: usize,
    /// Logit lens: tokens per image patch (0 = off).
    pub lens_k: usize,
    /// Layer whose image-position residuals the lens also reads through z(.) (planned before
    /// the forward pass; None: the embedding lens only).
    pub lens_layer: Option<usize>,
    /// Sequence positions whose residual entering `decompose_layer` is split into its
    /// attention part ("key input") and MLP part ("value input"), each read through z(.).
    pub decompose: Vec<usize>,
    /// Layer of the decomposition (default: the residual after the last layer).
    pub decompose_layer: Option<usize>,
    /// Heads (layer, head) whose per-patch scores are also wanted, besides the top k (a page
    /// showing the map of a head the user picked).
    pub head_maps: Vec<(usize, usize)>,
    /// Label for the JSON.
    pub model_name: String,
}

/// The most logit-lens tokens per patch an explanation reports.
pub const MAX_LENS_K: usize = 100;

impl ExplainOptions {
    /// Every option against the model and the sequence of `seq` positions, before any GPU work:
    /// out-of-range values are errors that say the range, never clamped.
    pub fn check(&self, config: &llava_lens_model::LlavaConfig, seq: usize) -> Result<(), ExplainError> {
        let t = &config.text;
        let (layers, heads) = (t.num_hidden_layers, t.num_attention_heads);
        let bad = |m: String| Err(ExplainError::Input(m));
        if self.top_k_heads == 0 {
            return bad("top-k heads must be at least 1 (the paper's map is the best head's)".into());
        }
        let max_k = MAX_LENS_K.min(t.vocab_size);
        if self.lens_k > max_k {
            return bad(format!("lens k {} is more than {max_k} tokens per patch", self.lens_k));
        }
        if let Some(l) = self.lens_layer.filter(|&l| l >= layers) {
            return bad(format!("lens layer {l} does not exist: the decoder's layers are 0..={}", layers - 1));
        }
        if let Some(l) = self.decompose_layer.filter(|&l| l > layers) {
            return bad(format!("decompose layer {l} is outside 0..={layers} ({layers}: after the last layer)"));
        }
        if let Some(&bad_pos) = self.decompose.iter().find(|&&p| p >= seq) {
            return bad(format!("position {bad_pos} is outside the sequence of {seq}"));
        }
        if let Some(&(l, h)) = self.head_maps.iter().find(|&&(l, h)| l >= layers || h >= heads) {
            return bad(format!("head {l}.{h} does not exist: the model has {layers} layers of {heads} heads"));
        }
        for (what, tok) in [("target", self.target), ("contrast", self.contrast)] {
            if let Some(id) = tok.filter(|&id| id as usize >= t.vocab_size) {
                return bad(format!("{what} token id {id} is outside the vocabulary of {}", t.vocab_size));
            }
        }
        Ok(())
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

/// Where non-finite logits came from: the first layer whose input residual at the last position
/// is already non-finite (read back only on this failure path).
async fn locate_non_finite(reader: &mut Reader<'_>, residuals: &[GpuTensor], after_last: &GpuTensor) -> String {
    for (l, row) in residuals.iter().chain(std::iter::once(after_last)).enumerate() {
        if let Ok(v) = reader.f32(row).await {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return if l < residuals.len() {
                    format!("the residual entering decoder layer {l} is the first non-finite one (element {i}: {})", v[i])
                } else {
                    format!("the last decoder layer's output is the first non-finite residual (element {i}: {})", v[i])
                };
            }
        }
    }
    "every residual at the last position is finite: the final norm or lm_head overflowed".into()
}

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            target: None,
            contrast: None,
            top_k_heads: 1,
            lens_k: 5,
            lens_layer: None,
            decompose: Vec::new(),
            decompose_layer: None,
            head_maps: Vec::new(),
            model_name: String::new(),
        }
    }
}

fn ms_since(t: Option<std::time::Instant>) -> Option<f64> {
    t.map(|t| t.elapsed().as_secs_f64() * 1e3)
}

#[cfg(not(target_arch = "wasm32"))]
fn clock() -> Option<std::time::Instant> {
    Some(std::time::Instant::now())
}

#[cfg(target_arch = "wasm32")]
fn clock() -> Option<std::time::Instant> {
    None
}

/// Reads back and counts the bytes.
struct Reader<'a> {
    ctx: &'a GpuContext,
    bytes: u64,
}

impl Reader<'_> {
    async fn f32(&mut self, t: &GpuTensor) -> Result<Vec<f32>, ExplainError> {
        self.bytes += t.size_bytes();
        Ok(read_f32(self.ctx, t).await?)
    }
    async fn u32(&mut self, t: &GpuTensor) -> Result<Vec<u32>, ExplainError> {
        self.bytes += t.size_bytes();
        Ok(read_u32(self.ctx, t).await?)
    }
}

/// Projects `rows [n, d]` through the frozen-scale final norm and lm_head and returns the
/// log-probabilities of `targets` (`[n, targets.len()]`, recorded, not yet read).
fn project(
    model: &Llava,
    rec: &mut Recorder<'_>,
    rows: &GpuTensor,
    final_resid: &GpuTensor,
    targets: &[u32],
) -> Result<GpuTensor, ExplainError> {
    let ctx = rec.ctx();
    let lm = &model.language_model;
    let n = rows.shape()[0];
    let scaled = GpuTensor::zeros(ctx, rows.shape(), "z(v) input");
    ops::fixed_rms_norm(rec, rows, &lm.norm.weight, final_resid, &scaled, PROJECTION_EPS)?;
    let logits = lm.lm_head.forward(rec, &scaled)?;
    let idx: Vec<u32> = (0..n).flat_map(|_| targets.iter().copied()).collect();
    let idx_t = GpuTensor::from_u32(ctx, &idx, &[n, targets.len()], "targets")?;
    let lp = GpuTensor::zeros(ctx, &[n, targets.len()], "log-probs");
    ops::log_softmax_gather(rec, &logits, lm.config.vocab_size, &idx_t, &lp)?;
    Ok(lp)
}

/// The authors' z(v) for every row of `rows [n, d]`: the final norm with its scale frozen at
/// `final_resid`, then lm_head; logits `[n, vocab]` (recorded).
fn z_logits(model: &Llava, rec: &mut Recorder<'_>, rows: &GpuTensor, final_resid: &GpuTensor) -> Result<GpuTensor, ExplainError> {
    let lm = &model.language_model;
    let scaled = GpuTensor::zeros(rec.ctx(), rows.shape(), "z(v) input");
    ops::fixed_rms_norm(rec, rows, &lm.norm.weight, final_resid, &scaled, PROJECTION_EPS)?;
    Ok(lm.lm_head.forward(rec, &scaled)?)
}

/// Ids of the top `k` tokens of each row of `logits [n, vocab]` (recorded).
fn top_ids(rec: &mut Recorder<'_>, logits: &GpuTensor, vocab: usize, k: usize) -> Result<GpuTensor, ExplainError> {
    let n = logits.len() / vocab;
    let (vals, ids) = (GpuTensor::zeros(rec.ctx(), &[n, k], "top values"), GpuTensor::zeros(rec.ctx(), &[n, k], "top ids"));
    ops::top_k(rec, logits, vocab, k, &vals, &ids)?;
    Ok(ids)
}

/// The score of each row: log p(target) or, with a contrast, log p(target) - log p(contrast).
fn row_scores(lp: &[f32], contrast: bool) -> Vec<f32> {
    if contrast { lp.chunks_exact(2).map(|p| p[0] - p[1]).collect() } else { lp.to_vec() }
}

/// How many of the model's top next tokens an explanation reports.
pub const TOP_TOKENS: usize = 5;

/// Explains the model's next token after `prompt` with the image `pixels`.
pub async fn explain(
    model: &Llava,
    ctx: &GpuContext,
    prompt: &Prompt,
    pixels: &[f32],
    opts: &ExplainOptions,
) -> Result<Explanation, ExplainError> {
    let c = &model.config;
    let t_cfg = &c.text;
    let (layers, heads, hd, d) = (t_cfg.num_hidden_layers, t_cfg.num_attention_heads, t_cfg.head_dim, t_cfg.hidden_size);
    let seq = c.sequence_length(prompt.ids.len());
    opts.check(c, seq)?;
    c.check_positions(prompt.ids.len(), 0).map_err(ExplainError::Input)?;
    let last = seq - 1;
    let all_heads: Vec<usize> = (0..heads).collect();
    let mut plan = CapturePlan::new();
    for l in 0..layers {
        plan.add(&format!("blocks.{l}.hook_resid_pre"), &[last], &[])?;
        plan.add(&format!("blocks.{l}.hook_resid_mid"), &[last], &[])?;
        plan.add(&format!("blocks.{l}.attn.hook_z"), &[last], &all_heads)?;
        plan.add(&format!("blocks.{l}.attn.hook_pattern"), &[last], &all_heads)?;
    }
    plan.add(&format!("blocks.{}.hook_resid_post", layers - 1), &[last], &[])?;
    let (off, n_img) = (prompt.image_offset, c.image_tokens());
    let image_rows: Vec<usize> = (off..off + n_img).collect();
    let lens_layer = opts.lens_layer;
    if let (Some(l), true) = (lens_layer, opts.lens_k > 0) {
        plan.add(&format!("blocks.{l}.hook_resid_pre"), &image_rows, &[])?;
    }
    let decompose_layer = opts.decompose_layer.unwrap_or(layers);
    if !opts.decompose.is_empty() {
        for l in 0..decompose_layer {
            plan.add(&format!("blocks.{l}.hook_attn_out"), &opts.decompose, &[])?;
            plan.add(&format!("blocks.{l}.hook_mlp_out"), &opts.decompose, &[])?;
        }
    }
    let mut reader = Reader { ctx, bytes: 0 };

    // 1. The forward pass and the next-token distribution.
    let t0 = clock();
    let mut rec = Recorder::new(ctx, "explain: forward");
    let pre = model.prefill(&mut rec, prompt, pixels, &plan, 0)?;
    // The model's own top tokens from the same pass (the page shows them; no second forward).
    let (_, top_ids_t, top_lp_t) = model.head(&mut rec, &pre.hidden, last, TOP_TOKENS.min(t_cfg.vocab_size))?;
    // The last position's row of each residual capture, in tensors of their own.
    let pick = |rec: &mut Recorder<'_>, l: usize, point: HookPoint| {
        let name = llava_lens_gpu::capture::Hook { layer: l, point }.to_string();
        let cap = &pre.captures.rows.iter().find(|(n, _)| *n == name).expect("planned").1;
        let i = cap.rows.iter().position(|&r| r == last).expect("last row planned");
        let t = GpuTensor::zeros(ctx, &[d], "residual row");
        rec.copy(cap.values.buffer(), cap.values.offset_bytes() + (i * d * 4) as u64, t.buffer(), 0, 4 * d as u64);
        t
    };
    let x_rows: Vec<GpuTensor> = (0..layers).map(|l| pick(&mut rec, l, HookPoint::ResidPre)).collect();
    let r_rows: Vec<GpuTensor> = (0..layers).map(|l| pick(&mut rec, l, HookPoint::ResidMid)).collect();
    let final_resid = pick(&mut rec, layers - 1, HookPoint::ResidPost);
    rec.submit();
    let top: Vec<(u32, f32)> = reader.u32(&top_ids_t).await?.into_iter().zip(reader.f32(&top_lp_t).await?).collect();
    if let Err(ModelError::NonFinite { stage, detail }) = llava_lens_model::check_top("the forward pass", &top, t_cfg.vocab_size) {
        let cause = locate_non_finite(&mut reader, &x_rows, &final_resid).await;
        return Err(ModelError::non_finite(stage, format!("{detail}; {cause}")).into());
    }
    let top1 = top[0].0;
    let forward_ms = ms_since(t0);
    let target = opts.target.unwrap_or(top1);
    let targets: Vec<u32> = std::iter::once(target).chain(opts.contrast).collect();
    let attn_cap = |l: usize| &pre.captures.attention.iter().find(|(n, _)| *n == l).expect("planned").1;

    // 2. Every head, attention layer and MLP as rows of one projection:
    //    [layer l, head h] = x^l + o^{l,h}; then x^l (L rows); r^l (L rows); x^L (1 row).
    let t1 = clock();
    let mut rec = Recorder::new(ctx, "explain: head scores");
    let n_rows = layers * heads + 2 * layers + 1;
    let rows = GpuTensor::zeros(ctx, &[n_rows, d], "projection rows");
    let row_bytes = 4 * d as u64;
    let pattern_sum = GpuTensor::zeros(ctx, &[heads * seq], "attention sum");
    for l in 0..layers {
        let cap = attn_cap(l);
        let z_block = GpuTensor::zeros(ctx, &[heads, heads * hd], "z block");
        ops::scatter_heads(&mut rec, &cap.z.view(ctx, 0, &[heads * hd])?, hd, &z_block)?;
        let head_out = model.language_model.layers[l].self_attn.o_proj.forward(&mut rec, &z_block)?;
        ops::bias_add(&mut rec, &head_out, &x_rows[l])?;
        rec.copy(head_out.buffer(), 0, rows.buffer(), (l * heads) as u64 * row_bytes, heads as u64 * row_bytes);
        rec.copy(x_rows[l].buffer(), 0, rows.buffer(), (layers * heads + l) as u64 * row_bytes, row_bytes);
        rec.copy(r_rows[l].buffer(), 0, rows.buffer(), (layers * heads + layers + l) as u64 * row_bytes, row_bytes);
        ops::residual_add(&mut rec, &pattern_sum, &cap.pattern.view(ctx, 0, &[heads * seq])?)?;
    }
    rec.copy(final_resid.buffer(), 0, rows.buffer(), (n_rows - 1) as u64 * row_bytes, row_bytes);
    let lp = project(model, &mut rec, &rows, &final_resid, &targets)?;
    // The targets' log-probabilities under the model's own head, for the report.
    let own_lp = model.target_log_probs(&mut rec, &pre.hidden, last, &targets)?;
    rec.submit();
    let scores = row_scores(&reader.f32(&lp).await?, opts.contrast.is_some());
    let attn_sum = reader.f32(&pattern_sum).await?;
    let own_lp = reader.f32(&own_lp).await?;
    check_scores("the head and layer scores", &scores)?;
    check_scores("the attention sums", &attn_sum)?;
    check_scores("the target's log-probability", &own_lp)?;
    let base = |l: usize| scores[layers * heads + l];
    let mid = |l: usize| scores[layers * heads + layers + l];
    let after = |l: usize| if l + 1 < layers { base(l + 1) } else { scores[n_rows - 1] };
    let head_scores: Vec<Vec<f32>> =
        (0..layers).map(|l| (0..heads).map(|h| importance(scores[l * heads + h], base(l))).collect()).collect();
    let attention_layer_scores: Vec<f32> = (0..layers).map(|l| importance(mid(l), base(l))).collect();
    let mlp_layer_scores: Vec<f32> = (0..layers).map(|l| importance(after(l), mid(l))).collect();
    let ranked = rank_heads(&head_scores);
    let head_ms = ms_since(t1);

    // 3. Positions in the best head (and, as an extension, the next k - 1): u_j = alpha_j v_j W_O^h.
    let t2 = clock();
    let k = opts.top_k_heads.min(ranked.len());
    let extra = opts.head_maps.iter().filter(|&&(l, h)| !ranked[..k].iter().any(|r| (r.layer, r.head) == (l, h)));
    let mapped: Vec<HeadScore> =
        ranked[..k].iter().copied().chain(extra.map(|&(layer, head)| HeadScore { layer, head, score: head_scores[layer][head] })).collect();
    let mut per_head_positions: Vec<Vec<f32>> = Vec::with_capacity(mapped.len());
    let mut best_alpha = Vec::new();
    for hs in &mapped {
        let (l, h) = (hs.layer, hs.head);
        let mut rec = Recorder::new(ctx, "explain: positions");
        let alpha = GpuTensor::zeros(ctx, &[seq], "alpha");
        let cap = attn_cap(l);
        rec.copy(cap.pattern.buffer(), cap.pattern.offset_bytes() + 4 * (h * seq) as u64, alpha.buffer(), 0, 4 * seq as u64);
        let kv_heads = t_cfg.num_key_value_heads;
        let u = GpuTensor::zeros(ctx, &[seq, heads * hd], "alpha v");
        ops::weighted_values(&mut rec, &pre.cache.values[l], kv_heads * hd, &alpha, h, h / (heads / kv_heads), heads, hd, &u)?;
        let pos_rows = model.language_model.layers[l].self_attn.o_proj.forward(&mut rec, &u)?;
        ops::bias_add(&mut rec, &pos_rows, &x_rows[l])?;
        let lp = project(model, &mut rec, &pos_rows, &final_resid, &targets)?;
        rec.submit();
        let s = row_scores(&reader.f32(&lp).await?, opts.contrast.is_some());
        check_scores(&format!("the position scores of head {l}.{h}"), &s)?;
        per_head_positions.push(s.iter().map(|&v| importance(v, base(l))).collect());
        if best_alpha.is_empty() {
            best_alpha = reader.f32(&alpha).await?;
        }
    }
    let position_ms = ms_since(t2);
    let decomposition = if opts.decompose.is_empty() || decompose_layer == 0 {
        Vec::new()
    } else {
        decompose(model, ctx, &mut reader, &pre, &final_resid, &opts.decompose, decompose_layer, opts.lens_k.max(1)).await?
    };
    let logit_lens = if opts.lens_k > 0 {
        Some(logit_lens(model, ctx, &mut reader, &pre, &final_resid, lens_layer, &image_rows, last, opts.lens_k).await?)
    } else {
        None
    };
    let position_scores = per_head_positions[0].clone();
    let patch_scores = position_scores[off..off + n_img].to_vec();
    let top_k_heads_map = (k > 1).then(|| crate::method::TopKMap {
        k,
        heads: ranked[..k].to_vec(),
        patch_scores: (0..n_img).map(|p| per_head_positions[..k].iter().map(|s| s[off + p]).sum()).collect(),
    });
    let head_maps = mapped
        .iter()
        .zip(&per_head_positions)
        .map(|(&head, s)| crate::method::HeadMap { head, patch_scores: s[off..off + n_img].to_vec() })
        .collect();
    let denom = (layers * heads) as f32;
    let baseline_map: Vec<f32> = (0..n_img).map(|p| (0..heads).map(|h| attn_sum[h * seq + off + p]).sum::<f32>() / denom).collect();
    // Token text needs the tokenizer, which the caller has: it fills `text` in.
    let token_info = |(id, log_prob): (u32, f32)| TokenInfo { id, text: None, log_prob };
    Ok(Explanation {
        schema: SCHEMA,
        model: opts.model_name.clone(),
        dtype: model.dtype.name().to_string(),
        prompt_ids: prompt.ids.clone(),
        image_offset: off,
        image_tokens: n_img,
        grid: c.vision.grid(),
        sequence_length: seq,
        prediction: top1,
        top: top.into_iter().map(token_info).collect(),
        target: token_info((target, own_lp[0])),
        contrast: opts.contrast.map(|c| token_info((c, own_lp[1]))),
        head_scores,
        attention_layer_scores,
        mlp_layer_scores,
        top_heads: ranked.iter().take(10).copied().collect::<Vec<HeadScore>>(),
        best_head: ranked[0],
        patch_map: normalise_map(&patch_scores),
        position_scores,
        position_attention: best_alpha,
        patch_scores,
        baseline_map,
        top_k_heads_map,
        head_maps,
        logit_lens,
        decomposition,
        timings_ms: Timings { forward: forward_ms, head_scores: head_ms, position_scores: position_ms },
        bytes_read_back: reader.bytes,
    })
}

/// Top-k tokens of every image patch: the projector output through the input embedding matrix,
/// and the residual entering `layer` through z(.) (METHOD.md sec. 5).
#[allow(clippy::too_many_arguments)]
async fn logit_lens(
    model: &Llava,
    ctx: &GpuContext,
    reader: &mut Reader<'_>,
    pre: &llava_lens_model::Prefill,
    final_resid: &GpuTensor,
    layer: Option<usize>,
    image_rows: &[usize],
    last: usize,
    k: usize,
) -> Result<crate::method::LogitLens, ExplainError> {
    let lm = &model.language_model;
    let (n, d, vocab) = (image_rows.len(), lm.config.hidden_size, lm.config.vocab_size);
    let mut rec = Recorder::new(ctx, "explain: logit lens");
    let emb_logits = GpuTensor::zeros(ctx, &[n, vocab], "embedding lens logits");
    ops::matmul(&mut rec, &pre.image_features, &lm.embed_tokens, &emb_logits)?;
    let emb_ids = top_ids(&mut rec, &emb_logits, vocab, k)?;
    // The residual lens needs its layer planned before the forward pass (`lens_layer`).
    let resid_ids = if let Some(layer) = layer {
        let name = llava_lens_gpu::capture::Hook { layer, point: HookPoint::ResidPre }.to_string();
        let cap = &pre.captures.rows.iter().find(|(nm, _)| *nm == name).expect("planned").1;
        let first = cap.rows.iter().position(|&r| r == image_rows[0]).expect("image rows planned");
        debug_assert!(cap.rows[first + n - 1] == image_rows[n - 1] && !cap.rows[first..first + n].contains(&last));
        let x = GpuTensor::zeros(ctx, &[n, d], "lens rows");
        rec.copy(cap.values.buffer(), cap.values.offset_bytes() + (first * d * 4) as u64, x.buffer(), 0, (n * d * 4) as u64);
        let logits = z_logits(model, &mut rec, &x, final_resid)?;
        Some(top_ids(&mut rec, &logits, vocab, k)?)
    } else {
        None
    };
    rec.submit();
    let rows = |ids: Vec<u32>| ids.chunks(k).map(|c| c.to_vec()).collect::<Vec<_>>();
    let embedding = rows(reader.u32(&emb_ids).await?);
    let residual = match resid_ids {
        Some(t) => Some(rows(reader.u32(&t).await?)),
        None => None,
    };
    Ok(crate::method::LogitLens { k, embedding, residual_layer: layer, residual })
}

/// METHOD.md sec. 5: the residual entering `layer` at each chosen position, split into the sum
/// of earlier attention outputs (key input) and of earlier MLP outputs (value input), each
/// projected with z(.); top-`k` token ids of both.
#[allow(clippy::too_many_arguments)]
async fn decompose(
    model: &Llava,
    ctx: &GpuContext,
    reader: &mut Reader<'_>,
    pre: &llava_lens_model::Prefill,
    final_resid: &GpuTensor,
    positions: &[usize],
    layer: usize,
    k: usize,
) -> Result<Vec<crate::method::Decomposition>, ExplainError> {
    let lm = &model.language_model;
    let (d, vocab) = (lm.config.hidden_size, lm.config.vocab_size);
    // Capture rows are the sorted, de-duplicated positions.
    let mut rows = positions.to_vec();
    rows.sort_unstable();
    rows.dedup();
    let n = rows.len();
    let mut rec = Recorder::new(ctx, "explain: decomposition");
    let sums = GpuTensor::zeros(ctx, &[2 * n, d], "key | value inputs");
    let (keys, values) = (GpuTensor::zeros(ctx, &[n, d], "key input"), GpuTensor::zeros(ctx, &[n, d], "value input"));
    for l in 0..layer {
        for (point, acc) in [(HookPoint::AttnOut, &keys), (HookPoint::MlpOut, &values)] {
            let name = llava_lens_gpu::capture::Hook { layer: l, point }.to_string();
            let cap = &pre.captures.rows.iter().find(|(nm, _)| *nm == name).expect("planned").1;
            ops::residual_add(&mut rec, acc, &cap.values)?;
        }
    }
    rec.copy(keys.buffer(), 0, sums.buffer(), 0, (n * d * 4) as u64);
    rec.copy(values.buffer(), 0, sums.buffer(), (n * d * 4) as u64, (n * d * 4) as u64);
    let logits = z_logits(model, &mut rec, &sums, final_resid)?;
    let ids = top_ids(&mut rec, &logits, vocab, k)?;
    rec.submit();
    let ids = reader.u32(&ids).await?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, &position)| crate::method::Decomposition {
            position,
            layer,
            key_input_top: ids[i * k..(i + 1) * k].to_vec(),
            value_input_top: ids[(n + i) * k..(n + i + 1) * k].to_vec(),
        })
        .collect())
}
