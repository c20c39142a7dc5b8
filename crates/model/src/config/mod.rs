//! HF `config.json` of a Llava model (`LlavaConfig` with a vision config, CLIP's or SigLIP's, and
//! a text config, LLaMA's, Mistral's or Qwen2's, inside), as written by the llava-hf Hub checkpoints (which
//! omit most fields and rely on the classes' defaults), transformers 4.x `save_pretrained` and
//! transformers 5 (`rope_parameters`, `head_dim`). Unsupported values are errors that name the key
//! and value. Size caps live in limits.rs, typed JSON reads in reader.rs, tests in tests.rs.

use std::path::Path;

use serde_json::Value;

use crate::ModelError;

pub mod limits;
mod reader;
#[cfg(test)]
mod tests;
mod text;

use reader::Reader;

/// config.json of llava-hf/llava-1.5-7b-hf as published (transformers 4.36 era): most text
/// fields are absent and come from LlamaConfig's defaults.
pub const LLAVA_1_5_7B_CONFIG: &str = r#"{
  "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000,
  "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
  "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
    "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05, "torch_dtype": "float16", "vocab_size": 32064},
  "tie_word_embeddings": false, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
  "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
  "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064}"#;

/// Which vision tower a checkpoint has (`vision_config.model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionKind {
    /// `clip_vision_model` (llava-1.5, bakLLaVA): a class token, a pre-layernorm, quick GELU.
    Clip,
    /// `siglip_vision_model` (llava-interleave): no class token, no pre-layernorm, a biased patch
    /// embedding, tanh GELU.
    Siglip,
}

impl VisionKind {
    pub fn model_type(self) -> &'static str {
        match self {
            VisionKind::Clip => "clip_vision_model",
            VisionKind::Siglip => "siglip_vision_model",
        }
    }

    /// The MLP activation transformers uses for it (`hidden_act`).
    pub fn hidden_act(self) -> &'static str {
        match self {
            VisionKind::Clip => "quick_gelu",
            VisionKind::Siglip => "gelu_pytorch_tanh",
        }
    }

    pub fn has_class_token(self) -> bool {
        self == VisionKind::Clip
    }
}

/// The vision tower (`CLIPVisionConfig` or `SiglipVisionConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub kind: VisionKind,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f32,
}

impl VisionConfig {
    /// Patches per side: the convolution's output size, `image_size // patch_size`.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Pixels a side the patch grid covers (`grid * patch_size`, at most `image_size`).
    pub fn covered_pixels(&self) -> usize {
        self.grid() * self.patch_size
    }
    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// Which decoder a checkpoint has (`text_config.model_type`): all run the same LLaMA layers
/// (RMSNorm, rotary grouped-query attention, SiLU-gated MLP), with the differences named here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// `llama` (Vicuna in llava-1.5).
    Llama,
    /// `mistral` (bakLLaVA): LLaMA's layers with a sliding attention window.
    Mistral,
    /// `qwen2` (llava-interleave-qwen): LLaMA's layers with biases on q, k and v (not o), a
    /// byte-level BPE vocabulary of 152k and, in the small checkpoints, lm_head tied to the
    /// embeddings.
    Qwen2,
}

impl TextKind {
    pub fn model_type(self) -> &'static str {
        match self {
            TextKind::Llama => "llama",
            TextKind::Mistral => "mistral",
            TextKind::Qwen2 => "qwen2",
        }
    }
}

/// The decoder (`LlamaConfig` or `MistralConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub kind: TextKind,
    /// q_proj, k_proj and v_proj carry biases (Qwen2's attention; o_proj never does).
    pub qkv_bias: bool,
    /// lm_head is embed_tokens (`tie_word_embeddings`, at the top or in text_config, as
    /// transformers' LlavaConfig reads it): one matrix serves both, and a checkpoint need not
    /// hold lm_head at all.
    pub tie_word_embeddings: bool,
    /// Mistral's `sliding_window`: positions further back than this are masked. llava-lens runs
    /// full attention, so sequences longer than the window are refused (`check_positions`).
    pub sliding_window: Option<usize>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub max_position_embeddings: usize,
}

/// Which vision-tower outputs feed the projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSelect {
    /// Drop the CLS token (llava-1.5).
    Default,
    /// Keep it.
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlavaConfig {
    /// The vision tower; None for a plain decoder checkpoint (the LLM a Llava was tuned from,
    /// e.g. Vicuna for llava-1.5), which answers text-only prompts.
    pub vision: Option<VisionConfig>,
    pub text: TextConfig,
    /// The `<image>` token's id (None without a vision tower).
    pub image_token_index: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// Indices into the vision tower's hidden states (HF semantics: 0 = embeddings, -1 = last
    /// layer's output, -2 = the second-to-last layer's output), one for an integer
    /// `vision_feature_layer`, several for a list: their states are concatenated along the
    /// feature axis in this order, and the projector's linear_1 takes them all.
    pub vision_feature_layers: Vec<i64>,
    pub vision_feature_select: FeatureSelect,
    pub projector_bias: bool,
}

impl LlavaConfig {
    /// The selected hidden states as counts of encoder layers run (0 = the embeddings), in the
    /// config's order. Validation keeps every index inside the tower.
    pub fn vision_feature_states(&self) -> Vec<usize> {
        let n = self.vision.as_ref().map_or(0, |v| v.num_hidden_layers) as i64;
        self.vision_feature_layers.iter().map(|&l| (if l < 0 { n + 1 + l } else { l }).max(0) as usize).collect()
    }

    /// Vision encoder layers that must run to produce every selected hidden state.
    pub fn vision_layers_to_run(&self) -> usize {
        self.vision_feature_states().into_iter().max().unwrap_or(0)
    }

    /// Image feature rows per image (576 for llava-1.5, 729 for llava-interleave's SigLIP).
    /// 0 without a vision tower.
    pub fn image_tokens(&self) -> usize {
        self.vision.as_ref().map_or(0, |v| {
            let class = v.kind.has_class_token() && self.vision_feature_select == FeatureSelect::Full;
            v.num_patches() + usize::from(class)
        })
    }

    /// The vision tower's config, or an error saying this checkpoint has none.
    pub fn vision_tower(&self) -> Result<&VisionConfig, ModelError> {
        self.vision.as_ref().ok_or_else(|| {
            ModelError::Prompt(format!(
                "this is a text-only {} checkpoint (no vision tower): give a text context instead of an image",
                self.text.kind.model_type()
            ))
        })
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses `config.json` text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let root: Value = serde_json::from_str(text).map_err(|e| ModelError::config(path, format!("not valid JSON: {e}")))?;
        let r = Reader { path, prefix: "", v: &root };
        let model_type = r.str_or("model_type", "")?;
        if !["llava", "llama", "mistral", "qwen2"].contains(&model_type.as_str()) {
            return Err(ModelError::config(
                path,
                format!(
                    "model_type is {model_type:?}; llava-lens supports \"llava\" (LlavaForConditionalGeneration: llava-1.5, bakLLaVA, \
                     llava-interleave) and the decoders they are tuned from, \"llama\", \"mistral\" and \"qwen2\" (text-only prompts)"
                ),
            ));
        }
        if model_type != "llava" {
            // A plain decoder checkpoint (the LLM a Llava was tuned from): text-only prompts.
            let text = text::parse(&r, &r, path)?;
            let cfg = LlavaConfig {
                vision: None,
                text,
                image_token_index: None,
                pad_token_id: r.v.get("pad_token_id").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()),
                vision_feature_layers: Vec::new(),
                vision_feature_select: FeatureSelect::Default,
                projector_bias: false,
            };
            cfg.validate(path)?;
            return Ok(cfg);
        }
        let vision = r.child("vision_config")?;
        let text_cfg = r.child("text_config")?;
        let text = text::parse(&text_cfg, &r, path)?;
        let kind = match vision.str_or("model_type", "clip_vision_model")?.as_str() {
            "clip_vision_model" => VisionKind::Clip,
            "siglip_vision_model" => VisionKind::Siglip,
            other => {
                return Err(ModelError::config(
                    path,
                    format!("vision_config.model_type is {other:?}; supported: \"clip_vision_model\" and \"siglip_vision_model\""),
                ));
            }
        };
        let act = vision.str_or("hidden_act", kind.hidden_act())?;
        if act != kind.hidden_act() {
            return Err(ModelError::config(
                path,
                format!("vision_config.hidden_act is {act:?}; a {} runs {:?}", kind.model_type(), kind.hidden_act()),
            ));
        }
        let act = r.str_or("projector_hidden_act", "gelu")?;
        if act != "gelu" {
            return Err(ModelError::config(path, format!("projector_hidden_act is {act:?}; only \"gelu\" is supported")));
        }
        let vision_feature_select = match r.str_or("vision_feature_select_strategy", "default")?.as_str() {
            "default" => FeatureSelect::Default,
            "full" => FeatureSelect::Full,
            other => {
                return Err(ModelError::config(
                    path,
                    format!("vision_feature_select_strategy is {other:?}; expected \"default\" or \"full\""),
                ));
            }
        };
        let layer_index = |v: &Value| v.as_i64().filter(|i| i.unsigned_abs() <= limits::VISION_LAYERS as u64 + 1);
        let wrong = |v: &Value| {
            ModelError::config(path, format!("vision_feature_layer is {v}; expected a layer index or a non-empty list of them"))
        };
        let vision_feature_layers = match r.v.get("vision_feature_layer") {
            None | Some(Value::Null) => vec![-2],
            Some(Value::Array(list)) if !list.is_empty() && list.len() <= limits::FEATURE_LAYERS => {
                list.iter().map(|v| layer_index(v).ok_or_else(|| wrong(v))).collect::<Result<_, _>>()?
            }
            Some(v) => vec![layer_index(v).ok_or_else(|| wrong(v))?],
        };
        // CLIPVisionConfig's and SiglipVisionConfig's defaults differ in patch size and eps.
        let (patch, eps) = match kind {
            VisionKind::Clip => (32, 1e-5),
            VisionKind::Siglip => (16, 1e-6),
        };
        let vision = VisionConfig {
            kind,
            hidden_size: vision.usize_or("hidden_size", 768)?,
            intermediate_size: vision.usize_or("intermediate_size", 3072)?,
            num_hidden_layers: vision.usize_or("num_hidden_layers", 12)?,
            num_attention_heads: vision.usize_or("num_attention_heads", 12)?,
            num_channels: vision.usize_or("num_channels", 3)?,
            image_size: vision.usize_or("image_size", 224)?,
            patch_size: vision.usize_or("patch_size", patch)?,
            layer_norm_eps: vision.f32_or("layer_norm_eps", eps)?,
        };
        let cfg = LlavaConfig {
            vision: Some(vision),
            text,
            image_token_index: Some(r.usize_or("image_token_index", 32000)? as u32),
            pad_token_id: r.v.get("pad_token_id").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok()),
            vision_feature_layers,
            vision_feature_select,
            projector_bias: r.v.get("multimodal_projector_bias").and_then(Value::as_bool).unwrap_or(true),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |d: String| Err(ModelError::config(path, d));
        let t = &self.text;
        // Text keys are under text_config in a Llava file, at the top of a decoder's own.
        let tp = if self.vision.is_some() { "text_config." } else { "" };
        for (key, value, max) in [
            ("vocab_size", t.vocab_size, limits::VOCAB),
            ("hidden_size", t.hidden_size, limits::HIDDEN),
            ("intermediate_size", t.intermediate_size, limits::INTERMEDIATE),
            ("num_hidden_layers", t.num_hidden_layers, limits::TEXT_LAYERS),
            ("num_attention_heads", t.num_attention_heads, limits::HEADS),
            ("num_key_value_heads", t.num_key_value_heads, limits::HEADS),
            ("head_dim", t.head_dim, limits::HEAD_DIM),
            ("max_position_embeddings", t.max_position_embeddings, limits::POSITIONS),
        ] {
            if value == 0 || value > max {
                return bad(format!("{tp}{key} is {value}; expected 1 to {max}"));
            }
        }
        for (key, value) in [("rms_norm_eps", t.rms_norm_eps), ("rope_theta", t.rope_theta)] {
            // Finite in JSON can still overflow f32 (1e300), and 0 divides by zero in the kernels.
            if !(value.is_finite() && value > 0.0) {
                return bad(format!("{tp}{key} is {value}; expected a positive finite number"));
            }
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return bad(format!(
                "{tp}num_attention_heads {} is not a multiple of {tp}num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if !t.head_dim.is_multiple_of(2) {
            return bad(format!("{tp}head_dim {} must be even for RoPE", t.head_dim));
        }
        let Some(v) = &self.vision else { return Ok(()) };
        for (key, value, max) in [
            ("vision_config.hidden_size", v.hidden_size, limits::HIDDEN),
            ("vision_config.intermediate_size", v.intermediate_size, limits::INTERMEDIATE),
            ("vision_config.num_hidden_layers", v.num_hidden_layers, limits::VISION_LAYERS),
            ("vision_config.num_attention_heads", v.num_attention_heads, limits::HEADS),
            ("vision_config.image_size", v.image_size, limits::IMAGE_SIZE),
            ("vision_config.patch_size", v.patch_size, limits::IMAGE_SIZE),
        ] {
            if value == 0 || value > max {
                return bad(format!("{key} is {value}; expected 1 to {max}"));
            }
        }
        if v.num_channels != 3 {
            return bad(format!("vision_config.num_channels is {}; the image processor makes RGB images, so it must be 3", v.num_channels));
        }
        if !(v.layer_norm_eps.is_finite() && v.layer_norm_eps > 0.0) {
            return bad(format!("vision_config.layer_norm_eps is {}; expected a positive finite number", v.layer_norm_eps));
        }
        // A remainder is allowed and ignored, as the stride-`patch` convolution ignores it
        // (SigLIP so400m: 384 px in 14 px patches is 27 x 27 patches, 6 px left over).
        if v.patch_size > v.image_size {
            return bad(format!("vision_config.patch_size {} is larger than image_size {}", v.patch_size, v.image_size));
        }
        if v.grid() > limits::GRID {
            return bad(format!(
                "vision_config: image_size {} / patch_size {} makes a {g}x{g} patch grid; at most {max}x{max} is supported",
                v.image_size,
                v.patch_size,
                g = v.grid(),
                max = limits::GRID
            ));
        }
        if v.hidden_size % v.num_attention_heads != 0 {
            return bad(format!("vision_config.hidden_size {} is not divisible by {} heads", v.hidden_size, v.num_attention_heads));
        }
        if !v.kind.has_class_token() && self.vision_feature_select == FeatureSelect::Default {
            // transformers would drop the first row anyway, which for SigLIP is a real patch.
            return bad(format!(
                "vision_feature_select_strategy is \"default\", which drops a class token a {} does not have; its checkpoints use \"full\"",
                v.kind.model_type()
            ));
        }
        let layers = v.num_hidden_layers as i64;
        if let Some(l) = self.vision_feature_layers.iter().find(|&&l| l > layers || l < -(layers + 1)) {
            return bad(format!("vision_feature_layer {l} is outside a {layers}-layer vision tower"));
        }
        if let Some(image) = self.image_token_index.filter(|&i| i as usize >= t.vocab_size) {
            return bad(format!("image_token_index {image} is outside the vocabulary of {}", t.vocab_size));
        }
        if self.image_tokens() >= t.max_position_embeddings {
            return bad(format!(
                "the image alone takes {} positions but text_config.max_position_embeddings is {}",
                self.image_tokens(),
                t.max_position_embeddings
            ));
        }
        Ok(())
    }

    /// Positions a prompt of `prompt_ids` tokens (one of them the image token) takes with the
    /// image's features spliced in.
    pub fn sequence_length(&self, prompt_ids: usize) -> usize {
        prompt_ids.saturating_sub(1).saturating_add(self.image_tokens())
    }

    /// Positions `prompt` takes: its ids, with the image's features in place of the image token
    /// when it has one.
    pub fn prompt_length(&self, prompt: &crate::Prompt) -> usize {
        if prompt.has_image() { self.sequence_length(prompt.ids.len()) } else { prompt.ids.len() }
    }

    /// An error (in words) when a prompt of `prompt_ids` tokens (one of them the image token)
    /// plus `new_tokens` generated ones would not fit the decoder: checked before any weight
    /// loads.
    pub fn check_positions(&self, prompt_ids: usize, new_tokens: usize) -> Result<(), String> {
        self.check_sequence(self.sequence_length(prompt_ids), self.image_tokens(), new_tokens)
    }

    /// [`LlavaConfig::check_positions`] for any prompt, text-only ones included.
    pub fn check_prompt(&self, prompt: &crate::Prompt, new_tokens: usize) -> Result<(), String> {
        let image = if prompt.has_image() { self.image_tokens() } else { 0 };
        self.check_sequence(self.prompt_length(prompt), image, new_tokens)
    }

    fn check_sequence(&self, seq: usize, image: usize, new_tokens: usize) -> Result<(), String> {
        if let Some(window) = self.text.sliding_window
            && seq.saturating_add(new_tokens) > window
        {
            return Err(format!(
                "the prompt and answer take up to {} positions, past the decoder's sliding attention window of {window} \
                 (text_config.sliding_window); llava-lens attends to every position, so it would not compute what the model does",
                seq.saturating_add(new_tokens)
            ));
        }
        let max = self.text.max_position_embeddings;
        if seq.saturating_add(new_tokens) > max {
            return Err(format!(
                "the prompt takes {seq} positions ({image} for the image, {} for the text){}, but the model has {max} \
                 (text_config.max_position_embeddings): shorten the question or the answer prefix",
                seq - image,
                if new_tokens > 0 { format!(" and the answer up to {new_tokens} more") } else { String::new() },
            ));
        }
        Ok(())
    }
}
