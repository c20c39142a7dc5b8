//! The LLaMA decoder (transformers/models/llama/modeling_llama.py: LlamaDecoderLayer, LlamaAttention with
//! grouped-query heads and rotate_half RoPE, LlamaMLP with SiLU), with a KV cache and the capture
//! plan's hooks at every layer. Mistral and Qwen2 run the same layers: Qwen2 adds biases to q, k
//! and v (`TextConfig::qkv_bias`) and may tie lm_head to the embeddings. gate_proj and up_proj are stacked into one matrix at load so one
//! GEMM feeds `silu_mul`.

use std::collections::BTreeMap;

use llava_lens_gpu::capture::{AttentionCapture, CapturePlan, Hook, HookPoint, RowCapture};
use llava_lens_gpu::ops::KeyMask;
use llava_lens_gpu::{GpuContext, GpuError, GpuMatrix, GpuTensor, Recorder, ops};
use llava_lens_tensor::cpu::{AttentionShape, RopeShape};

use crate::ModelError;
use crate::config::TextConfig;
use crate::edits::Edits;
use crate::layers::{Linear, RmsNorm, rows_of};
use crate::weights::{Role, Uploader};

const P: &str = "language_model.model";

#[derive(Debug)]
pub struct LlamaAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
}

#[derive(Debug)]
pub struct LlamaDecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: LlamaAttention,
    pub post_attention_layernorm: RmsNorm,
    /// gate_proj rows then up_proj rows: `[2 * intermediate, hidden]`.
    pub gate_up_proj: Linear,
    pub down_proj: Linear,
}

#[derive(Debug)]
pub struct Llama {
    pub config: TextConfig,
    pub embed_tokens: GpuMatrix,
    pub layers: Vec<LlamaDecoderLayer>,
    pub norm: RmsNorm,
    pub lm_head: Linear,
}

/// Keys and values of every layer for the positions seen so far.
#[derive(Debug)]
pub struct KvCache {
    pub keys: Vec<GpuTensor>,   // per layer [capacity, kv_heads * head_dim]
    pub values: Vec<GpuTensor>, // per layer [capacity, kv_heads * head_dim]
    pub capacity: usize,
    pub len: usize,
}

impl KvCache {
    pub fn new(ctx: &GpuContext, c: &TextConfig, capacity: usize) -> Self {
        let w = c.num_key_value_heads * c.head_dim;
        let mk = |label| (0..c.num_hidden_layers).map(|_| GpuTensor::zeros(ctx, &[capacity, w], label)).collect();
        KvCache { keys: mk("k cache"), values: mk("v cache"), capacity, len: 0 }
    }

    pub fn bytes(&self) -> u64 {
        self.keys.iter().chain(&self.values).map(|t| t.size_bytes()).sum()
    }

    /// Records `k` and `v` (`[rows, kv_heads * head_dim]`) as layer `layer`'s entries for the
    /// positions `len..len + rows` (the caller advances `len` once every layer has appended).
    pub fn append(&self, rec: &mut Recorder<'_>, layer: usize, k: &GpuTensor, v: &GpuTensor) -> Result<(), ModelError> {
        let rows = rows_of(k);
        if self.len + rows > self.capacity {
            return Err(ModelError::Prompt(format!("{} positions exceed the KV cache of {}", self.len + rows, self.capacity)));
        }
        rec.copy_rows(k, 0, &self.keys[layer], self.len, rows)?;
        rec.copy_rows(v, 0, &self.values[layer], self.len, rows)?;
        Ok(())
    }
}

/// The device buffers of one forward pass's capture plan, filled while recording, found by the
/// hook they serve.
#[derive(Debug, Default)]
pub struct LayerCaptures {
    pub rows: BTreeMap<Hook, RowCapture>,
    pub attention: BTreeMap<usize, AttentionCapture>,
}

impl LayerCaptures {
    /// The rows captured at a residual-stream `hook`; an error if it was not planned.
    pub fn row(&self, hook: Hook) -> Result<&RowCapture, ModelError> {
        self.rows.get(&hook).ok_or_else(|| ModelError::Gpu(GpuError::Capture(format!("{hook} was not in the capture plan"))))
    }

    /// Layer `layer`'s attention capture (pattern and z); an error if it was not planned.
    pub fn attention(&self, layer: usize) -> Result<&AttentionCapture, ModelError> {
        self.attention
            .get(&layer)
            .ok_or_else(|| ModelError::Gpu(GpuError::Capture(format!("{} was not in the capture plan", Hook::pattern(layer)))))
    }
}

impl Llama {
    pub(crate) async fn load(up: &mut Uploader<'_>, c: &TextConfig) -> Result<Self, ModelError> {
        let (d, i, hd) = (c.hidden_size, c.intermediate_size, c.head_dim);
        let (q, kv) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        let embed_tokens = up.matrix(&[&format!("{P}.embed_tokens.weight")], &[c.vocab_size], d, Role::Vocabulary).await?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        let (eps, qkv_bias) = (c.rms_norm_eps, c.qkv_bias);
        for n in 0..c.num_hidden_layers {
            let l = format!("{P}.layers.{n}");
            let name = |n: &str| format!("{l}.{n}");
            let gate_up = up.matrix(&[&name("mlp.gate_proj.weight"), &name("mlp.up_proj.weight")], &[i, i], d, Role::DecoderLinear).await?;
            layers.push(LlamaDecoderLayer {
                input_layernorm: RmsNorm::load(up, &name("input_layernorm.weight"), d, eps).await?,
                self_attn: LlamaAttention {
                    q_proj: Linear::load(up, &name("self_attn.q_proj"), q, d, qkv_bias, Role::DecoderLinear).await?,
                    k_proj: Linear::load(up, &name("self_attn.k_proj"), kv, d, qkv_bias, Role::DecoderLinear).await?,
                    v_proj: Linear::load(up, &name("self_attn.v_proj"), kv, d, qkv_bias, Role::DecoderLinear).await?,
                    o_proj: Linear::load(up, &name("self_attn.o_proj"), d, q, false, Role::DecoderLinear).await?,
                },
                post_attention_layernorm: RmsNorm::load(up, &name("post_attention_layernorm.weight"), d, eps).await?,
                gate_up_proj: Linear { weight: gate_up, bias: None },
                down_proj: Linear::load(up, &name("mlp.down_proj"), d, i, false, Role::DecoderLinear).await?,
            });
        }
        let norm = RmsNorm::load(up, &format!("{P}.norm.weight"), d, eps).await?;
        // Tied: the same buffers serve the embedding gather and the unembedding (both are in the
        // vocabulary's dtype), and any lm_head.weight a checkpoint holds is ignored, as
        // transformers ignores it.
        let lm_head = if c.tie_word_embeddings {
            Linear { weight: embed_tokens.clone(), bias: None }
        } else {
            Linear::load(up, "language_model.lm_head", c.vocab_size, d, false, Role::Vocabulary).await?
        };
        Ok(Llama { config: c.clone(), embed_tokens, layers, norm, lm_head })
    }

    /// Runs the decoder over `x [L, hidden]` at positions `cache.len ..`, appending to the cache;
    /// returns the residual stream after the last layer. Planned hooks are recorded into `caps`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: GpuTensor,
        cache: &mut KvCache,
        plan: &CapturePlan,
        caps: &mut LayerCaptures,
        mask: Option<KeyMask<'_>>,
    ) -> Result<GpuTensor, ModelError> {
        self.forward_edited(rec, x, 0, cache, plan, caps, mask, &Edits::default())
    }

    /// [`Llama::forward`] from layer `first` (`x` is the residual entering it; the cache's
    /// earlier layers are left as they are) with `edits` applied as it goes.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_edited(
        &self,
        rec: &mut Recorder<'_>,
        mut x: GpuTensor,
        first: usize,
        cache: &mut KvCache,
        plan: &CapturePlan,
        caps: &mut LayerCaptures,
        mask: Option<KeyMask<'_>>,
        edits: &Edits,
    ) -> Result<GpuTensor, ModelError> {
        let l = rows_of(&x);
        if cache.len + l > cache.capacity {
            return Err(ModelError::Prompt(format!("{} tokens exceed the context of {} set for this run", cache.len + l, cache.capacity)));
        }
        if let Some(e) = edits.first_layer().filter(|&e| e < first) {
            return Err(ModelError::Prompt(format!("an edit at layer {e} comes before the pass's first layer {first}")));
        }
        for (n, layer) in self.layers.iter().enumerate().skip(first) {
            edits.apply_resid(rec, n, &x, cache.len)?;
            x = layer.forward(rec, x, n, &self.config, cache, plan, caps, mask, edits)?;
            // A long prefill's temporaries are ~30 MB per layer at 7B shapes: submit layer by
            // layer so they are freed as it goes instead of all living until the end.
            if l > 1 {
                rec.flush();
            }
        }
        cache.len += l;
        Ok(x)
    }
}

fn capture_rows(
    rec: &mut Recorder<'_>,
    plan: &CapturePlan,
    caps: &mut LayerCaptures,
    layer: usize,
    point: HookPoint,
    x: &GpuTensor,
) -> Result<(), ModelError> {
    if let Some(sel) = plan.get(layer, point) {
        let d = x.shape()[1];
        let hook = Hook { layer, point };
        let cap = RowCapture::new(rec.ctx(), sel, d, &hook.to_string());
        cap.record(rec, x)?;
        caps.rows.insert(hook, cap);
    }
    Ok(())
}

impl LlamaDecoderLayer {
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: GpuTensor,
        n: usize,
        c: &TextConfig,
        cache: &mut KvCache,
        plan: &CapturePlan,
        caps: &mut LayerCaptures,
        mask: Option<KeyMask<'_>>,
        edits: &Edits,
    ) -> Result<GpuTensor, ModelError> {
        let ctx = rec.ctx();
        let (l, pos, hd) = (rows_of(&x), cache.len, c.head_dim);
        capture_rows(rec, plan, caps, n, HookPoint::ResidPre, &x)?;
        let (q, k, v) = self.project_qkv(rec, &x)?;
        let rope = |heads: usize| RopeShape {
            n_rows: l,
            n_heads: heads,
            head_dim: hd,
            row_stride: heads * hd,
            col_offset: 0,
            pos_offset: pos,
            theta: c.rope_theta,
        };
        ops::rope(rec, &q, rope(c.num_attention_heads))?;
        ops::rope(rec, &k, rope(c.num_key_value_heads))?;
        cache.append(rec, n, &k, &v)?;
        let shape = AttentionShape::packed(l, pos + l, c.num_attention_heads, c.num_key_value_heads, hd, true);
        let attn = GpuTensor::output(ctx, &[l, c.num_attention_heads * hd], "attention z");
        match plan.attention(n) {
            Some(sel) => {
                let cap = AttentionCapture::new(ctx, &sel, &shape)?;
                ops::attention_with(rec, &q, &cache.keys[n], &cache.values[n], &attn, &shape, Some(&cap), mask)?;
                caps.attention.insert(n, cap);
            }
            None => ops::attention_with(rec, &q, &cache.keys[n], &cache.values[n], &attn, &shape, None, mask)?,
        }
        edits.apply_heads(rec, n, &attn, pos, hd)?;
        self.after_attention(rec, x, &attn, n, c, plan, caps)
    }

    /// The input norm and the q, k, v projections of `x`.
    pub(crate) fn project_qkv(&self, rec: &mut Recorder<'_>, x: &GpuTensor) -> Result<(GpuTensor, GpuTensor, GpuTensor), ModelError> {
        let h = self.input_layernorm.forward(rec, x)?;
        let a = &self.self_attn;
        Ok((a.q_proj.forward(rec, &h)?, a.k_proj.forward(rec, &h)?, a.v_proj.forward(rec, &h)?))
    }

    /// Everything after attention: o_proj of the heads' outputs `z`, the residual, the MLP and its
    /// residual, with the planned captures; returns the layer's output.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn after_attention(
        &self,
        rec: &mut Recorder<'_>,
        x: GpuTensor,
        z: &GpuTensor,
        n: usize,
        c: &TextConfig,
        plan: &CapturePlan,
        caps: &mut LayerCaptures,
    ) -> Result<GpuTensor, ModelError> {
        let l = rows_of(&x);
        let attn_out = self.self_attn.o_proj.forward(rec, z)?;
        capture_rows(rec, plan, caps, n, HookPoint::AttnOut, &attn_out)?;
        ops::residual_add(rec, &attn_out, &x)?; // attn_out is now r = x + a
        capture_rows(rec, plan, caps, n, HookPoint::ResidMid, &attn_out)?;
        let h = self.post_attention_layernorm.forward(rec, &attn_out)?;
        let gu = self.gate_up_proj.forward(rec, &h)?;
        let m = GpuTensor::output(rec.ctx(), &[l, c.intermediate_size], "silu_mul");
        ops::silu_mul(rec, &gu, c.intermediate_size, &m)?;
        let f = self.down_proj.forward(rec, &m)?;
        capture_rows(rec, plan, caps, n, HookPoint::MlpOut, &f)?;
        ops::residual_add(rec, &f, &attn_out)?; // f is now x + a + mlp
        capture_rows(rec, plan, caps, n, HookPoint::ResidPost, &f)?;
        Ok(f)
    }
}
