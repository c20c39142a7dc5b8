//! `LlavaForConditionalGeneration` (transformers/models/llava/modeling_llava.py): the vision tower's
//! features at the chosen layer or layers (CLIP's CLS dropped under "default"), the two-layer GELU
//! projector, spliced into the token embeddings at the `<image>` token, then the decoder; greedy
//! generation with a KV cache.

use std::collections::BTreeMap;
use std::time::Duration;

use llava_lens_gpu::capture::{CapturePlan, Hook};
use llava_lens_gpu::ops::KeyMask;
use llava_lens_gpu::{GpuContext, GpuTensor, HostCounts, Recorder, StagingBuffer, ops, read_f32};

use crate::config::{FeatureSelect, LlavaConfig};
use crate::layers::Linear;
use crate::llama::{KvCache, LayerCaptures, Llama};
use crate::vision::VisionTower;
use crate::weights::{Role, Uploader, WeightDType, WeightSource};
use crate::{Edits, ModelError, Prompt};

/// `LlavaMultiModalProjector`: linear_1 -> GELU -> linear_2.
#[derive(Debug)]
pub struct Projector {
    /// linear_1 cut by columns into one block per selected vision state (one block, the whole
    /// matrix, for a single feature layer); the bias rides on the first.
    pub linear_1: Vec<Linear>,
    pub linear_2: Linear,
}

impl Projector {
    async fn load(up: &mut Uploader<'_>, config: &LlavaConfig, v: &crate::config::VisionConfig) -> Result<Self, ModelError> {
        let (dv, dt) = (v.hidden_size, config.text.hidden_size);
        let bias = config.projector_bias;
        let blocks = config.vision_feature_layers.len();
        let linear_1 = if blocks == 1 {
            vec![Linear::load(up, "multi_modal_projector.linear_1", dt, dv, bias, Role::Vision).await?]
        } else {
            let weights = up.column_blocks("multi_modal_projector.linear_1.weight", dt, dv, blocks, Role::Vision).await?;
            let mut b = if bias { Some(up.vector("multi_modal_projector.linear_1.bias", dt).await?) } else { None };
            weights.into_iter().map(|weight| Linear { weight, bias: b.take() }).collect()
        };
        Ok(Projector { linear_1, linear_2: Linear::load(up, "multi_modal_projector.linear_2", dt, dt, bias, Role::Vision).await? })
    }

    /// `states` (one `[rows, vision hidden]` per block) -> `[rows, text hidden]`: linear_1 of
    /// their concatenation, as the sum of each block's product, then GELU and linear_2.
    pub fn forward(&self, rec: &mut Recorder<'_>, states: &[GpuTensor]) -> Result<GpuTensor, ModelError> {
        if states.len() != self.linear_1.len() {
            return Err(ModelError::Prompt(format!("{} vision states for a projector of {} blocks", states.len(), self.linear_1.len())));
        }
        let mut h = self.linear_1[0].forward(rec, &states[0])?;
        for (block, x) in self.linear_1.iter().zip(states).skip(1) {
            let part = block.forward(rec, x)?;
            ops::residual_add(rec, &part, &h)?; // part is now the running sum
            h = part;
        }
        ops::gelu(rec, &h)?;
        self.linear_2.forward(rec, &h)
    }
}

#[derive(Debug)]
pub struct Llava {
    pub config: LlavaConfig,
    pub dtype: WeightDType,
    /// None for a plain decoder checkpoint (text-only prompts).
    pub vision_tower: Option<VisionTower>,
    pub multi_modal_projector: Option<Projector>,
    pub language_model: Llama,
    /// Bytes of weights on the GPU.
    pub weight_bytes: u64,
}

/// What one run returns: the generated tokens, the next-token distribution at the prompt's last
/// position, and every planned capture (read back once, at the end).
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    pub prompt_len: usize,
    /// Greedy tokens after the prompt (stops at EOS, which is included, or the limit).
    pub tokens: Vec<u32>,
    /// Top-k `(token, log-probability)` at the last prompt position.
    pub top: Vec<(u32, f32)>,
    /// Full logits at the last prompt position, when asked for (tests, explanations).
    pub logits: Option<Vec<f32>>,
    /// Projector output `[image tokens, hidden]`, when asked for.
    pub image_features: Option<Vec<f32>>,
    /// Captured activations by hook name, with their shapes.
    pub captures: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Image-to-first-token time and the decode time (None where no monotonic clock is wired,
    /// i.e. in wasm, whose caller times with performance.now()).
    pub prefill_time: Option<Duration>,
    pub decode_time: Option<Duration>,
    /// The host's work over the decode steps (each step records, submits and reads one token):
    /// summed counts, and the time spent recording (None where there is no clock).
    pub decode_host: HostCounts,
    pub decode_encode_time: Option<Duration>,
    /// Decode steps run (tokens after the first).
    pub decode_steps: usize,
}

/// A recorded prefill: the last layer's output `[seq, hidden]`, the KV cache, the planned
/// captures (device buffers) and the projector output.
#[derive(Debug)]
pub struct Prefill {
    pub seq_len: usize,
    pub hidden: GpuTensor,
    pub cache: KvCache,
    pub captures: LayerCaptures,
    /// None for a text-only prompt.
    pub image_features: Option<GpuTensor>,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub max_new_tokens: usize,
    pub top_k: usize,
    pub keep_logits: bool,
    pub keep_image_features: bool,
    pub plan: CapturePlan,
    /// Generation stops after this token (the tokenizer's `</s>`).
    pub eos: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { max_new_tokens: 16, top_k: 5, keep_logits: false, keep_image_features: false, plan: CapturePlan::new(), eos: Some(2) }
    }
}

impl Llava {
    /// Builds the model from a weight source, uploading one tensor at a time. `on_tensor` is
    /// called after each (progress bars). Natively the checkpoint's futures are ready at once
    /// (`pollster::block_on`); in a browser they wait for the network or a file.
    pub async fn load(
        ctx: &GpuContext,
        source: &dyn WeightSource,
        config: &LlavaConfig,
        dtype: WeightDType,
        on_tensor: Option<&dyn Fn(&str)>,
    ) -> Result<Self, ModelError> {
        Self::load_in_chunks(ctx, source, config, dtype, on_tensor, crate::weights::CHUNK_F32_BYTES).await
    }

    /// [`Llava::load`] converting large matrices `chunk_f32_bytes` of f32 at a time (tests use
    /// small chunks to exercise the sliced path on tiny models).
    pub async fn load_in_chunks(
        ctx: &GpuContext,
        source: &dyn WeightSource,
        config: &LlavaConfig,
        dtype: WeightDType,
        on_tensor: Option<&dyn Fn(&str)>,
        chunk_f32_bytes: usize,
    ) -> Result<Self, ModelError> {
        let mut up = Uploader { ctx, source, policy: dtype, gpu_bytes: 0, on_tensor, chunk_f32_bytes };
        let (vision_tower, multi_modal_projector) = match &config.vision {
            Some(v) => {
                let tower = VisionTower::load(&mut up, v, config.vision_layers_to_run()).await?;
                (Some(tower), Some(Projector::load(&mut up, config, v).await?))
            }
            None => (None, None),
        };
        let language_model = Llama::load(&mut up, &config.text).await?;
        // Out of memory, or a buffer over the device's limits, is reported by the device on its
        // own: fail the load rather than run on buffers that do not exist.
        ctx.check_errors()?;
        Ok(Llava { config: config.clone(), dtype, vision_tower, multi_modal_projector, language_model, weight_bytes: up.gpu_bytes })
    }

    /// Progress ticks a full load reports (the total of progress bars): 16 per vision layer run
    /// (6 weights, 6 biases, 2 layer norms' weight and bias), 9 per LLaMA layer (7 matrices, 2
    /// norms; Qwen2's q, k and v biases make 12), 7 outside the layers (projector, embeddings,
    /// final norm, lm_head; 6 when lm_head is the embeddings) and the vision embeddings' vectors:
    /// CLIP's class and position embeddings and pre-layernorm (4), SigLIP's conv bias and
    /// position embeddings (2). A plain decoder has only its embeddings, final norm and lm_head
    /// outside the layers. crates/model/tests/loading.rs counts the ticks of real loads.
    pub fn tensor_count(config: &LlavaConfig) -> usize {
        let t = &config.text;
        let decoder = if t.tie_word_embeddings { 2 } else { 3 } + if t.qkv_bias { 12 } else { 9 } * t.num_hidden_layers;
        let vision = config.vision.as_ref().map_or(0, |v| {
            let embeddings = if v.kind.has_class_token() { 4 } else { 2 };
            4 + embeddings + 16 * config.vision_layers_to_run()
        });
        decoder + vision
    }

    /// The bytes [`Llava::load`] will place on the GPU for weights (what `weight_bytes` reports
    /// after the load), and the largest single weight buffer, from the config alone: what a page
    /// shows before a download and checks against the adapter's limits. In closed form (one
    /// term per kind of layer times the number of layers) and in u64, so a hostile config costs
    /// nothing to estimate and no product wraps on wasm32.
    pub fn weight_bytes_estimate(config: &LlavaConfig, dtype: WeightDType) -> (u64, u64) {
        let t = &config.text;
        let u = |n: usize| n as u64;
        let mut largest = 0u64;
        // Bytes of `count` matrices of `rows x cols` in the role's dtype.
        let mut matrices = |count: u64, rows: usize, cols: usize, role: Role| {
            let one = u(crate::weights::gpu_dtype(dtype, role, cols).row_bytes(cols)).saturating_mul(u(rows));
            if count > 0 {
                largest = largest.max(one);
            }
            one.saturating_mul(count)
        };
        let dt = t.hidden_size;
        let text_layers = u(t.num_hidden_layers);
        let (q, kv) = (t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim);
        let mut matrix_bytes = vec![
            matrices(if t.tie_word_embeddings { 1 } else { 2 }, t.vocab_size, dt, Role::Vocabulary),
            matrices(text_layers, 2 * t.intermediate_size, dt, Role::DecoderLinear),
            matrices(text_layers, q, dt, Role::DecoderLinear),
            matrices(2 * text_layers, kv, dt, Role::DecoderLinear),
            matrices(text_layers, dt, q, Role::DecoderLinear),
            matrices(text_layers, dt, t.intermediate_size, Role::DecoderLinear),
        ];
        // Vectors in f32: per LLaMA layer 2 norms (and Qwen2's q, k, v biases); the final norm;
        // with a vision tower, CLIP's class token, position embeddings and pre-layernorm (weight
        // and bias), or SigLIP's conv bias and position embeddings; per vision layer 4 biases of
        // dv, 2 norms (weight and bias), fc1's and fc2's biases; the projector's biases.
        let qkv_biases = if t.qkv_bias { u(q + 2 * kv) } else { 0 };
        let mut vectors = text_layers * (2 * u(dt) + qkv_biases) + u(dt);
        if let Some(v) = &config.vision {
            let dv = v.hidden_size;
            let vision_layers = u(config.vision_layers_to_run());
            matrix_bytes.extend([
                matrices(1, dv, v.num_channels * v.patch_size * v.patch_size, Role::Vision),
                matrices(4 * vision_layers, dv, dv, Role::Vision),
                matrices(vision_layers, v.intermediate_size, dv, Role::Vision),
                matrices(vision_layers, dv, v.intermediate_size, Role::Vision),
                matrices(u(config.vision_feature_layers.len()), dt, dv, Role::Vision),
                matrices(1, dt, dt, Role::Vision),
            ]);
            let embeddings = if v.kind.has_class_token() { 1 + (u(v.num_patches()) + 1) + 2 } else { 1 + u(v.num_patches()) };
            vectors += u(dv) * embeddings + vision_layers * (u(4 * dv + 4 * dv + v.intermediate_size + dv));
            vectors += if config.projector_bias { 2 * u(dt) } else { 0 };
        }
        let total = matrix_bytes.iter().fold(0u64, |a, &b| a.saturating_add(b)).saturating_add(4 * vectors);
        (total, largest)
    }

    /// A rough bound on the GPU memory an explanation needs besides the weights, for `seq`
    /// positions: the KV cache, the largest forward activation and the explanation's batched
    /// vocabulary projection (one row per head, layer and position scored). In u64, saturating.
    pub fn working_bytes_estimate(config: &LlavaConfig, seq: usize) -> u64 {
        let t = &config.text;
        let u = |n: usize| n as u64;
        let kv = 2 * u(t.num_hidden_layers) * u(seq) * u(t.num_key_value_heads) * u(t.head_dim);
        let vision_mlp = config.vision.as_ref().map_or(0, |v| v.intermediate_size);
        let activation = u(seq) * 3 * u(t.intermediate_size.max(vision_mlp));
        let rows = (u(t.num_hidden_layers) * u(t.num_attention_heads) + 2 * u(t.num_hidden_layers) + 1).max(u(seq));
        let projection = rows.saturating_mul(u(t.vocab_size) + 2 * u(t.hidden_size));
        kv.saturating_add(activation).saturating_add(projection).saturating_mul(4)
    }

    /// `pixels [3, S, S]` -> projected image features `[image tokens, text hidden]`.
    pub fn image_features(&self, rec: &mut Recorder<'_>, pixels: &GpuTensor) -> Result<GpuTensor, ModelError> {
        let v = self.config.vision_tower()?;
        let (Some(tower), Some(projector)) = (&self.vision_tower, &self.multi_modal_projector) else {
            return Err(ModelError::Prompt("the vision tower was not loaded".into()));
        };
        let states = tower.hidden_states(rec, pixels, &self.config.vision_feature_states())?;
        let (n, dv) = (v.num_patches(), v.hidden_size);
        let mut feats = Vec::with_capacity(states.len());
        for h in states {
            feats.push(match self.config.vision_feature_select {
                FeatureSelect::Full => h,
                // Config parsing refuses "default" for towers without a class token.
                FeatureSelect::Default => {
                    // Row 0 is the class token, dropped from every selected state.
                    let f = GpuTensor::zeros(rec.ctx(), &[n, dv], "image features");
                    rec.copy_rows(&h, 1, &f, 0, n)?;
                    f
                }
            });
        }
        projector.forward(rec, &feats)
    }

    /// Records the prefill of `prompt` with the image: vision tower, projector, splice, every
    /// decoder layer with `plan`'s captures. Nothing is submitted (long prefills flush per layer).
    /// `extra_tokens` reserves KV-cache room for generation. A text-only prompt takes no pixels
    /// (`pixels` empty) and runs the decoder alone.
    pub fn prefill(
        &self,
        rec: &mut Recorder<'_>,
        prompt: &Prompt,
        pixels: &[f32],
        plan: &CapturePlan,
        extra_tokens: usize,
    ) -> Result<Prefill, ModelError> {
        let image_features = self.features_for(rec, prompt, pixels)?;
        self.prefill_with_features(rec, prompt, image_features, plan, extra_tokens, None)
    }

    /// The projector's output for `pixels` (recorded), checked against the prompt: None for a
    /// text-only prompt, which takes no pixels.
    pub fn features_for(&self, rec: &mut Recorder<'_>, prompt: &Prompt, pixels: &[f32]) -> Result<Option<GpuTensor>, ModelError> {
        if !prompt.has_image() {
            if !pixels.is_empty() {
                return Err(ModelError::Prompt("an image was given with a text-only prompt (it has no image token)".into()));
            }
            return Ok(None);
        }
        let s = self.config.vision_tower()?.image_size;
        if pixels.len() != 3 * s * s {
            return Err(ModelError::Prompt(format!("pixel_values hold {} values; the model takes 3 x {s} x {s}", pixels.len())));
        }
        let pixels_t = GpuTensor::from_f32(rec.ctx(), pixels, &[3, s, s], "pixel_values")?;
        Ok(Some(self.image_features(rec, &pixels_t)?))
    }

    /// [`Llava::prefill`] from given image features `[image tokens, hidden]` (the projector's
    /// output, possibly edited: faithfulness tests replace patches' features), optionally with a
    /// key mask (attention knockout).
    pub fn prefill_with_features(
        &self,
        rec: &mut Recorder<'_>,
        prompt: &Prompt,
        image_features: Option<GpuTensor>,
        plan: &CapturePlan,
        extra_tokens: usize,
        mask: Option<KeyMask<'_>>,
    ) -> Result<Prefill, ModelError> {
        self.prefill_edited(rec, prompt, image_features, plan, extra_tokens, mask, &Edits::default())
    }

    /// [`Llava::prefill_with_features`] with interventions (`crates/model/src/edits.rs`).
    #[allow(clippy::too_many_arguments)]
    pub fn prefill_edited(
        &self,
        rec: &mut Recorder<'_>,
        prompt: &Prompt,
        image_features: Option<GpuTensor>,
        plan: &CapturePlan,
        extra_tokens: usize,
        mask: Option<KeyMask<'_>>,
        edits: &Edits,
    ) -> Result<Prefill, ModelError> {
        let c = &self.config;
        let x = self.inputs_embeds(rec, prompt, image_features.as_ref())?;
        let seq_len = x.shape()[0];
        // Full attention equals Mistral's windowed one only inside the window: the cache stops
        // there, so generation past it ends with an error instead of computing something else.
        let window = c.text.sliding_window.unwrap_or(usize::MAX);
        if seq_len > window {
            return Err(ModelError::Prompt(format!(
                "{seq_len} positions exceed the decoder's sliding attention window of {window} (text_config.sliding_window)"
            )));
        }
        let capacity = (seq_len + extra_tokens).min(c.text.max_position_embeddings.max(seq_len + 1)).min(window);
        let mut cache = KvCache::new(rec.ctx(), &c.text, capacity);
        let mut captures = LayerCaptures::default();
        let hidden = self.language_model.forward_edited(rec, x, 0, &mut cache, plan, &mut captures, mask, edits)?;
        Ok(Prefill { seq_len, hidden, cache, captures, image_features })
    }

    /// The decoder's input `[seq, hidden]`: token embeddings with the image features spliced in
    /// where `<image>` stood (a text-only prompt has neither).
    pub fn inputs_embeds(
        &self,
        rec: &mut Recorder<'_>,
        prompt: &Prompt,
        image_features: Option<&GpuTensor>,
    ) -> Result<GpuTensor, ModelError> {
        let ctx = rec.ctx();
        let c = &self.config;
        let d = c.text.hidden_size;
        let vocab = c.text.vocab_size;
        if let Some(&bad) = prompt.ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Prompt(format!("token id {bad} is outside the model's vocabulary of {vocab}")));
        }
        let (off, feats) = match (prompt.image_offset, image_features) {
            (Some(off), Some(f)) => (off, f),
            (None, None) => {
                let seq_len = prompt.ids.len();
                let ids_t = GpuTensor::from_u32(ctx, &prompt.ids, &[seq_len], "input_ids")?;
                let x = GpuTensor::zeros(ctx, &[seq_len, d], "inputs_embeds");
                ops::embedding(rec, &ids_t, &self.language_model.embed_tokens, &x)?;
                return Ok(x);
            }
            (Some(_), None) => return Err(ModelError::Prompt("the prompt has an image token but no image features were given".into())),
            (None, Some(_)) => return Err(ModelError::Prompt("image features were given for a text-only prompt".into())),
        };
        let n_img = c.image_tokens();
        let seq_len = prompt.ids.len() - 1 + n_img;
        if feats.len() != n_img * d {
            return Err(ModelError::Prompt(format!("{} image feature values; the model takes {n_img} x {d}", feats.len())));
        }
        let mut ids: Vec<u32> = prompt.ids[..off].to_vec();
        ids.extend(std::iter::repeat_n(0, n_img));
        ids.extend_from_slice(&prompt.ids[off + 1..]);
        let ids_t = GpuTensor::from_u32(ctx, &ids, &[seq_len], "input_ids")?;
        let x = GpuTensor::zeros(ctx, &[seq_len, d], "inputs_embeds");
        ops::embedding(rec, &ids_t, &self.language_model.embed_tokens, &x)?;
        rec.copy_elements(feats, 0, &x, off * d, n_img * d)?;
        Ok(x)
    }

    /// Runs the prompt with the image and generates greedily.
    pub async fn run(&self, ctx: &GpuContext, prompt: &Prompt, pixels: &[f32], opts: &RunOptions) -> Result<RunOutput, ModelError> {
        let d = self.config.text.hidden_size;
        let start = now();
        let mut rec = Recorder::new(ctx, "prefill");
        let Prefill { seq_len, hidden: h, mut cache, captures: caps, image_features: feats } =
            self.prefill(&mut rec, prompt, pixels, &opts.plan, opts.max_new_tokens)?;
        let (logits, top_ids, top_lp) = self.head(&mut rec, &h, seq_len - 1, opts.top_k)?;
        // The top tokens come back with the prefill's own submission; the optional, possibly
        // large reads below stay one tensor each (a staging buffer per tensor stays within the
        // device's buffer size).
        let top = rec.submit_and_read(&[&top_ids, &top_lp]).await?;
        let mut out = RunOutput { prompt_len: seq_len, ..Default::default() };
        out.top = top.u32(0).into_iter().zip(top.f32(1)).collect();
        crate::error::check_top("the forward pass", &out.top, self.config.text.vocab_size)?;
        if opts.keep_logits {
            out.logits = Some(read_f32(ctx, &logits).await?);
        }
        if let (true, Some(feats)) = (opts.keep_image_features, &feats) {
            out.image_features = Some(read_f32(ctx, feats).await?);
        }
        for (hook, cap) in &caps.rows {
            out.captures.insert(hook.to_string(), (cap.values.shape().to_vec(), read_f32(ctx, &cap.values).await?));
        }
        for (&layer, cap) in &caps.attention {
            out.captures.insert(Hook::pattern(layer).to_string(), (cap.pattern.shape().to_vec(), read_f32(ctx, &cap.pattern).await?));
            out.captures.insert(Hook::z(layer).to_string(), (cap.z.shape().to_vec(), read_f32(ctx, &cap.z).await?));
        }
        out.prefill_time = elapsed(start);

        // Greedy decoding: one submit (the step and its 4-byte read) per token.
        let decode_start = now();
        let mut next = out.top.first().map(|t| t.0).unwrap_or(0);
        let no_plan = CapturePlan::new();
        // The token's id and its way back live as long as the loop: a step creates no buffer,
        // and its bind groups repeat from token to token.
        let id_t = GpuTensor::zeros(ctx, &[1], "token");
        let staging = StagingBuffer::new(ctx, 4);
        let counts_before = ctx.memory().host_counts();
        let mut encode = Duration::ZERO;
        for step in 0..opts.max_new_tokens {
            out.tokens.push(next);
            if Some(next) == opts.eos || step + 1 == opts.max_new_tokens || cache.len >= cache.capacity {
                break;
            }
            let encode_start = now();
            let mut rec = Recorder::new(ctx, "decode");
            id_t.write_u32(ctx, &[next])?;
            let x = GpuTensor::output(ctx, &[1, d], "embed");
            ops::embedding(&mut rec, &id_t, &self.language_model.embed_tokens, &x)?;
            let h = self.language_model.forward(&mut rec, x, &mut cache, &no_plan, &mut LayerCaptures::default(), None)?;
            let (_, top_ids, _) = self.head(&mut rec, &h, 0, 1)?;
            encode += elapsed(encode_start).unwrap_or_default();
            out.decode_steps += 1;
            next = rec.submit_and_read_u32(&top_ids, &staging).await?[0];
            if next as usize >= self.config.text.vocab_size {
                return Err(ModelError::non_finite(format!("decoding token {}", step + 2), "the logits are not finite (no top token)"));
            }
        }
        out.decode_time = elapsed(decode_start);
        out.decode_host = ctx.memory().host_counts() - counts_before;
        out.decode_encode_time = out.decode_time.map(|_| encode);
        Ok(out)
    }

    /// The model's logits `[vocab]` at row `row` of the last layer's output `h` (final norm and
    /// lm_head).
    pub fn logits_at(&self, rec: &mut Recorder<'_>, h: &GpuTensor, row: usize) -> Result<GpuTensor, ModelError> {
        let lm = &self.language_model;
        let d = lm.config.hidden_size;
        let last = GpuTensor::output(rec.ctx(), &[1, d], "last hidden");
        rec.copy_rows(h, row, &last, 0, 1)?;
        let normed = lm.norm.forward(rec, &last)?;
        lm.lm_head.forward(rec, &normed)
    }

    /// The log-probabilities of `targets` at row `row` of `h` (recorded, not read).
    pub fn target_log_probs(&self, rec: &mut Recorder<'_>, h: &GpuTensor, row: usize, targets: &[u32]) -> Result<GpuTensor, ModelError> {
        self.target_log_probs_rows(rec, h, &[row], targets)
    }

    /// [`Llava::target_log_probs`] at each of `rows` of `h`, in one final norm and one lm_head
    /// product: `[rows.len(), targets.len()]` (recorded, not read).
    pub fn target_log_probs_rows(
        &self,
        rec: &mut Recorder<'_>,
        h: &GpuTensor,
        rows: &[usize],
        targets: &[u32],
    ) -> Result<GpuTensor, ModelError> {
        let ctx = rec.ctx();
        let lm = &self.language_model;
        let m = rows.len();
        let picked = GpuTensor::zeros(ctx, &[m, lm.config.hidden_size], "rows to read");
        for (i, &row) in rows.iter().enumerate() {
            rec.copy_rows(h, row, &picked, i, 1)?;
        }
        let normed = lm.norm.forward(rec, &picked)?;
        let logits = lm.lm_head.forward(rec, &normed)?;
        let idx: Vec<u32> = rows.iter().flat_map(|_| targets.iter().copied()).collect();
        let idx = GpuTensor::from_u32(ctx, &idx, &[m, targets.len()], "targets")?;
        let lp = GpuTensor::zeros(ctx, &[m * targets.len()], "target log-probs");
        ops::log_softmax_gather(rec, &logits, self.config.text.vocab_size, &idx, &lp)?;
        Ok(lp)
    }

    /// Final norm and lm_head at row `row` of `h`: the logits `[vocab]` and the top `k` tokens
    /// with their log-probabilities (all on the GPU).
    pub fn head(
        &self,
        rec: &mut Recorder<'_>,
        h: &GpuTensor,
        row: usize,
        k: usize,
    ) -> Result<(GpuTensor, GpuTensor, GpuTensor), ModelError> {
        let ctx = rec.ctx();
        let lm = &self.language_model;
        let logits = self.logits_at(rec, h, row)?;
        let vocab = lm.config.vocab_size;
        let (vals, ids, lp) = (
            GpuTensor::output(ctx, &[k], "top values"),
            GpuTensor::output(ctx, &[k], "top ids"),
            GpuTensor::output(ctx, &[k], "top log-probs"),
        );
        ops::top_k(rec, &logits, vocab, k, &vals, &ids)?;
        ops::log_softmax_gather(rec, &logits, vocab, &ids, &lp)?;
        Ok((logits, ids, lp))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn now() -> Option<std::time::Instant> {
    Some(std::time::Instant::now())
}

#[cfg(target_arch = "wasm32")]
fn now() -> Option<()> {
    None
}

#[cfg(not(target_arch = "wasm32"))]
fn elapsed(start: Option<std::time::Instant>) -> Option<Duration> {
    start.map(|s| s.elapsed())
}

#[cfg(target_arch = "wasm32")]
fn elapsed(_: Option<()>) -> Option<Duration> {
    None
}
