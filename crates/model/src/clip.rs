//! The CLIP vision tower up to the feature layer (transformers/models/clip/modeling_clip.py:
//! CLIPVisionEmbeddings, CLIPEncoderLayer, `pre_layrnorm`; the post-layernorm is never used by
//! Llava). Weight names are HF's, verbatim.

use llava_lens_gpu::{GpuMatrix, GpuTensor, Recorder, ops};
use llava_lens_tensor::cpu::{AttentionShape, PatchShape};

use crate::ModelError;
use crate::config::VisionConfig;
use crate::layers::{LayerNorm, Linear, rows_of};
use crate::weights::{Role, Uploader};

const P: &str = "vision_tower.vision_model";

#[derive(Debug)]
pub struct ClipAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
}

#[derive(Debug)]
pub struct ClipEncoderLayer {
    pub layer_norm1: LayerNorm,
    pub self_attn: ClipAttention,
    pub layer_norm2: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Debug)]
pub struct ClipVision {
    pub config: VisionConfig,
    /// Conv2d weight flattened to `[hidden, channels * patch * patch]`.
    pub patch_embedding: GpuMatrix,
    pub class_embedding: GpuTensor,    // [hidden]
    pub position_embedding: GpuTensor, // [patches + 1, hidden]
    pub pre_layrnorm: LayerNorm,
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipVision {
    /// Loads the embeddings and the first `n_layers` encoder layers.
    pub(crate) async fn load(up: &mut Uploader<'_>, c: &VisionConfig, n_layers: usize) -> Result<Self, ModelError> {
        let (d, ch, p) = (c.hidden_size, c.num_channels, c.patch_size);
        let conv = up.source.f32(&format!("{P}.embeddings.patch_embedding.weight"), &[d, ch, p, p]).await?;
        let dtype = crate::weights::gpu_dtype(up.policy, Role::Vision, ch * p * p);
        let host = llava_lens_tensor::HostMatrix::from_f32(d, ch * p * p, &conv, dtype)?;
        let patch_embedding = GpuMatrix::upload(up.ctx, &host, "patch_embedding")?;
        up.gpu_bytes += (host.row_bytes() * d) as u64;
        let class_embedding = up.vector(&format!("{P}.embeddings.class_embedding"), d).await?;
        let position_embedding = up.tensor(&format!("{P}.embeddings.position_embedding.weight"), &[c.num_patches() + 1, d]).await?;
        let pre_layrnorm = LayerNorm::load(up, &format!("{P}.pre_layrnorm"), d, c.layer_norm_eps).await?;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let l = format!("{P}.encoder.layers.{i}");
            let name = |n: &str| format!("{l}.{n}");
            let eps = c.layer_norm_eps;
            layers.push(ClipEncoderLayer {
                layer_norm1: LayerNorm::load(up, &name("layer_norm1"), d, eps).await?,
                self_attn: ClipAttention {
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
        Ok(ClipVision { config: c.clone(), patch_embedding, class_embedding, position_embedding, pre_layrnorm, layers })
    }

    /// `pixels [3, H, W]` -> hidden states after the loaded layers, `[patches + 1, hidden]`
    /// (row 0 is CLS).
    pub fn forward(&self, rec: &mut Recorder<'_>, pixels: &GpuTensor) -> Result<GpuTensor, ModelError> {
        let c = &self.config;
        let (d, n) = (c.hidden_size, c.num_patches());
        let ctx = rec.ctx();
        let s = PatchShape { channels: c.num_channels, height: c.image_size, width: c.image_size, patch: c.patch_size };
        let cols = GpuTensor::zeros(ctx, &[n, s.patch_len()], "im2col");
        let patches = GpuTensor::zeros(ctx, &[n, d], "patch embeds");
        ops::patch_embed(rec, pixels, s, &cols, &self.patch_embedding, &patches)?;
        // embeddings = cat([class, patches]) + position_embedding
        let x = GpuTensor::zeros(ctx, &[n + 1, d], "clip embeddings");
        rec.copy_elements(&self.class_embedding, 0, &x, 0, d)?;
        rec.copy_rows(&patches, 0, &x, 1, n)?;
        ops::residual_add(rec, &x, &self.position_embedding)?;
        let mut h = self.pre_layrnorm.forward(rec, &x)?;
        for layer in &self.layers {
            h = layer.forward(rec, &h, c)?;
        }
        Ok(h)
    }
}

impl ClipEncoderLayer {
    fn forward(&self, rec: &mut Recorder<'_>, x: &GpuTensor, c: &VisionConfig) -> Result<GpuTensor, ModelError> {
        let l = rows_of(x);
        let h = self.layer_norm1.forward(rec, x)?;
        let a = &self.self_attn;
        let (q, k, v) = (a.q_proj.forward(rec, &h)?, a.k_proj.forward(rec, &h)?, a.v_proj.forward(rec, &h)?);
        let o = GpuTensor::zeros(rec.ctx(), &[l, c.hidden_size], "clip attention");
        let shape = AttentionShape::packed(l, l, c.num_attention_heads, c.num_attention_heads, c.head_dim(), false);
        ops::attention(rec, &q, &k, &v, &o, &shape)?;
        let attn_out = a.out_proj.forward(rec, &o)?;
        ops::residual_add(rec, &attn_out, x)?;
        let h = self.layer_norm2.forward(rec, &attn_out)?;
        let f = self.fc1.forward(rec, &h)?;
        ops::quick_gelu(rec, &f)?;
        let y = self.fc2.forward(rec, &f)?;
        ops::residual_add(rec, &y, &attn_out)?;
        Ok(y)
    }
}
