//! The vision tower up to the feature layer, CLIP's or SigLIP's: the same encoder layer
//! (layer_norm1, biased q/k/v/out projections, layer_norm2, fc1, activation, fc2) under different
//! embeddings. CLIP (transformers/models/clip/modeling_clip.py): a class token, position
//! embeddings for it and every patch, `pre_layrnorm`, quick GELU. SigLIP
//! (transformers/models/siglip/modeling_siglip.py): patches only, a biased patch convolution, no
//! pre-layernorm, tanh GELU. Neither tower's post-layernorm is used: Llava takes encoder hidden
//! states, which come before it (SigLIP's model records them with `tie_last_hidden_states=False`
//! for that reason). Weight names are HF's, verbatim.

use llava_lens_gpu::{GpuMatrix, GpuTensor, Recorder, ops};
use llava_lens_tensor::cpu::{AttentionShape, PatchShape};

use crate::ModelError;
use crate::config::{VisionConfig, VisionKind};
use crate::layers::{LayerNorm, Linear, rows_of};
use crate::weights::{Role, Uploader};

const P: &str = "vision_tower.vision_model";

#[derive(Debug)]
pub struct VisionAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
}

#[derive(Debug)]
pub struct VisionEncoderLayer {
    pub layer_norm1: LayerNorm,
    pub self_attn: VisionAttention,
    pub layer_norm2: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Debug)]
pub struct VisionTower {
    pub config: VisionConfig,
    /// Conv2d weight flattened to `[hidden, channels * patch * patch]`.
    pub patch_embedding: GpuMatrix,
    /// SigLIP's conv bias `[hidden]` (CLIP's conv has none).
    pub patch_bias: Option<GpuTensor>,
    /// CLIP's class token `[hidden]`.
    pub class_embedding: Option<GpuTensor>,
    /// `[patches (+ 1 for CLIP's class token), hidden]`.
    pub position_embedding: GpuTensor,
    /// CLIP's `pre_layrnorm`.
    pub pre_layrnorm: Option<LayerNorm>,
    pub layers: Vec<VisionEncoderLayer>,
}

impl VisionTower {
    /// Loads the embeddings and the first `n_layers` encoder layers.
    pub(crate) async fn load(up: &mut Uploader<'_>, c: &VisionConfig, n_layers: usize) -> Result<Self, ModelError> {
        let (d, ch, p) = (c.hidden_size, c.num_channels, c.patch_size);
        let conv = up.source.f32(&format!("{P}.embeddings.patch_embedding.weight"), &[d, ch, p, p]).await?;
        let dtype = crate::weights::gpu_dtype(up.policy, Role::Vision, ch * p * p);
        let host = llava_lens_tensor::HostMatrix::from_f32(d, ch * p * p, &conv, dtype)?;
        let patch_embedding = GpuMatrix::upload(up.ctx, &host, "patch_embedding")?;
        up.gpu_bytes += (host.row_bytes() * d) as u64;
        let class = c.kind.has_class_token();
        let (patch_bias, class_embedding, pre_layrnorm) = match c.kind {
            VisionKind::Clip => (
                None,
                Some(up.vector(&format!("{P}.embeddings.class_embedding"), d).await?),
                Some(LayerNorm::load(up, &format!("{P}.pre_layrnorm"), d, c.layer_norm_eps).await?),
            ),
            VisionKind::Siglip => (Some(up.vector(&format!("{P}.embeddings.patch_embedding.bias"), d).await?), None, None),
        };
        let position_embedding =
            up.tensor(&format!("{P}.embeddings.position_embedding.weight"), &[c.num_patches() + usize::from(class), d]).await?;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let l = format!("{P}.encoder.layers.{i}");
            let name = |n: &str| format!("{l}.{n}");
            let eps = c.layer_norm_eps;
            layers.push(VisionEncoderLayer {
                layer_norm1: LayerNorm::load(up, &name("layer_norm1"), d, eps).await?,
                self_attn: VisionAttention {
                    q_proj: Linear::load(up, &name("self_attn.q_proj"), d, d, true, Role::Vision).await?,
                    k_proj: Linear::load(up, &name("self_attn.k_proj"), d, d, true, Role::Vision).await?,
                    v_proj: Linear::load(up, &name("self_attn.v_proj"), d, d, true, Role::Vision).await?,
                    out_proj: Linear::load(up, &name("self_attn.out_proj"), d, d, true, Role::Vision).await?,
                },
                layer_norm2: LayerNorm::load(up, &name("layer_norm2"), d, eps).await?,
                fc1: Linear::load(up, &name("mlp.fc1"), c.intermediate_size, d, true, Role::Vision).await?,
                fc2: Linear::load(up, &name("mlp.fc2"), d, c.intermediate_size, true, Role::Vision).await?,
            });
        }
        Ok(VisionTower { config: c.clone(), patch_embedding, patch_bias, class_embedding, position_embedding, pre_layrnorm, layers })
    }

    /// `pixels [3, H, W]` -> hidden states after the loaded layers: `[patches + 1, hidden]` for
    /// CLIP (row 0 is its class token), `[patches, hidden]` for SigLIP.
    pub fn forward(&self, rec: &mut Recorder<'_>, pixels: &GpuTensor) -> Result<GpuTensor, ModelError> {
        let mut states = self.hidden_states(rec, pixels, &[self.layers.len()])?;
        Ok(states.remove(0))
    }

    /// transformers' `hidden_states[i]` for each `i` of `states` (0 = the embeddings as the
    /// encoder receives them, `i` = after `i` layers), in that order; every `i` at most the
    /// number of loaded layers. Each layer writes fresh outputs, so a kept state stays valid.
    pub fn hidden_states(&self, rec: &mut Recorder<'_>, pixels: &GpuTensor, states: &[usize]) -> Result<Vec<GpuTensor>, ModelError> {
        if let Some(&i) = states.iter().find(|&&i| i > self.layers.len()) {
            return Err(ModelError::Prompt(format!("vision hidden state {i} asked of a tower loaded with {} layers", self.layers.len())));
        }
        let c = &self.config;
        let (d, n) = (c.hidden_size, c.num_patches());
        let ctx = rec.ctx();
        let s = PatchShape { channels: c.num_channels, height: c.image_size, width: c.image_size, patch: c.patch_size };
        let cols = GpuTensor::zeros(ctx, &[n, s.patch_len()], "im2col");
        let patches = GpuTensor::zeros(ctx, &[n, d], "patch embeds");
        ops::patch_embed(rec, pixels, s, &cols, &self.patch_embedding, &patches)?;
        if let Some(b) = &self.patch_bias {
            ops::bias_add(rec, &patches, b)?;
        }
        // CLIP: cat([class, patches]) + position_embedding, then pre_layrnorm.
        // SigLIP: patches + position_embedding.
        let x = match &self.class_embedding {
            Some(class) => {
                let x = GpuTensor::zeros(ctx, &[n + 1, d], "clip embeddings");
                rec.copy_elements(class, 0, &x, 0, d)?;
                rec.copy_rows(&patches, 0, &x, 1, n)?;
                x
            }
            None => patches,
        };
        ops::residual_add(rec, &x, &self.position_embedding)?;
        let mut h = match &self.pre_layrnorm {
            Some(norm) => norm.forward(rec, &x)?,
            None => x,
        };
        let mut kept: Vec<Option<GpuTensor>> = vec![None; states.len()];
        let mut keep = |count: usize, h: &GpuTensor| {
            states.iter().zip(kept.iter_mut()).filter(|(i, _)| **i == count).for_each(|(_, k)| *k = Some(h.clone()));
        };
        keep(0, &h);
        let last = states.iter().copied().max().unwrap_or(0);
        for (n, layer) in self.layers.iter().take(last).enumerate() {
            h = layer.forward(rec, &h, c)?;
            keep(n + 1, &h);
        }
        kept.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| ModelError::Prompt("a vision hidden state was not produced".into()))
    }
}

impl VisionEncoderLayer {
    fn forward(&self, rec: &mut Recorder<'_>, x: &GpuTensor, c: &VisionConfig) -> Result<GpuTensor, ModelError> {
        let l = rows_of(x);
        let h = self.layer_norm1.forward(rec, x)?;
        let a = &self.self_attn;
        let (q, k, v) = (a.q_proj.forward(rec, &h)?, a.k_proj.forward(rec, &h)?, a.v_proj.forward(rec, &h)?);
        let o = GpuTensor::zeros(rec.ctx(), &[l, c.hidden_size], "vision attention");
        let shape = AttentionShape::packed(l, l, c.num_attention_heads, c.num_attention_heads, c.head_dim(), false);
        ops::attention(rec, &q, &k, &v, &o, &shape)?;
        let attn_out = a.out_proj.forward(rec, &o)?;
        ops::residual_add(rec, &attn_out, x)?;
        let h = self.layer_norm2.forward(rec, &attn_out)?;
        let f = self.fc1.forward(rec, &h)?;
        match c.kind {
            VisionKind::Clip => ops::quick_gelu(rec, &f)?,
            VisionKind::Siglip => ops::gelu_tanh(rec, &f)?,
        }
        let y = self.fc2.forward(rec, &f)?;
        ops::residual_add(rec, &y, &attn_out)?;
        Ok(y)
    }
}
