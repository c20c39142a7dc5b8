//! The real checkpoints llava-lens knows by name: their config.json shapes (what `bench e2e
//! --preset` builds with random weights, and what docs/MODEL.md's size table is computed from),
//! and where the Hub keeps them. Only families the runtime supports are listed; the others are
//! named in docs/MODEL.md with what is missing.

use std::path::Path;

use crate::config::LLAVA_1_5_7B_CONFIG;
use crate::{LlavaConfig, ModelError};

/// A real checkpoint's shape and address.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The name `--preset` takes.
    pub name: &'static str,
    /// The Hub folder (`https://huggingface.co/{hub}`).
    pub hub: &'static str,
    /// Its config.json (the fields that set sizes; the rest are the classes' defaults, as in the
    /// published files).
    config: &'static str,
}

impl Preset {
    pub fn config(&self) -> Result<LlavaConfig, ModelError> {
        LlavaConfig::parse(self.config, Path::new(self.name))
    }
}

/// llava-hf/llava-1.5-13b-hf: the 7B's CLIP-L/336 and projector, Vicuna-13B (40 layers of
/// width 5120).
const LLAVA_1_5_13B_CONFIG: &str = r#"{
  "architectures": ["LlavaForConditionalGeneration"], "image_token_index": 32000, "model_type": "llava",
  "pad_token_id": 32001, "projector_hidden_act": "gelu",
  "text_config": {"architectures": ["LlamaForCausalLM"], "hidden_size": 5120, "intermediate_size": 13824,
    "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 40, "num_hidden_layers": 40,
    "num_key_value_heads": 40, "rms_norm_eps": 1e-05, "vocab_size": 32064},
  "tie_word_embeddings": false,
  "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768},
  "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064}"#;

/// llava-hf/bakLLaVA-v1-hf: CLIP-L/336 and Mistral-7B v0.1 (MistralConfig's defaults: 32 layers,
/// 8 key/value heads, a 4096-position sliding window), Mistral's 32000 tokens plus `<image>` and
/// `<pad>`.
const BAKLLAVA_V1_CONFIG: &str = r#"{
  "architectures": ["LlavaForConditionalGeneration"], "image_token_index": 32000, "model_type": "llava",
  "pad_token_id": 32001, "projector_hidden_act": "gelu",
  "text_config": {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 32002},
  "tie_word_embeddings": false,
  "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768},
  "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32002}"#;

pub const PRESETS: [Preset; 3] = [
    Preset { name: "llava-1.5-7b", hub: "llava-hf/llava-1.5-7b-hf", config: LLAVA_1_5_7B_CONFIG },
    Preset { name: "llava-1.5-13b", hub: "llava-hf/llava-1.5-13b-hf", config: LLAVA_1_5_13B_CONFIG },
    Preset { name: "bakllava-v1", hub: "llava-hf/bakLLaVA-v1-hf", config: BAKLLAVA_V1_CONFIG },
];

/// The preset called `name`, or an error listing them.
pub fn preset(name: &str) -> Result<Preset, String> {
    PRESETS
        .iter()
        .find(|p| p.name == name)
        .copied()
        .ok_or_else(|| format!("unknown preset {name:?}; known: {}", PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TextKind;
    use crate::{Llava, WeightDType};

    #[test]
    fn every_preset_parses_and_its_weights_are_the_size_its_parameters_say() {
        for p in PRESETS {
            let c = p.config().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let (f16, _) = Llava::weight_bytes_estimate(&c, WeightDType::F16);
            let (q4, largest) = Llava::weight_bytes_estimate(&c, WeightDType::Q4);
            // Parameters as published: 7.06e9, 13.35e9, 7.57e9 (f16 = 2 bytes each, plus the
            // vision tower's last layer, which llava-lens does not load).
            let params = f16 as f64 / 2.0;
            let want = match p.name {
                "llava-1.5-7b" => 7.06e9,
                "llava-1.5-13b" => 13.35e9,
                _ => 7.57e9,
            };
            assert!((params / want - 1.0).abs() < 0.02, "{}: {params:.3e} parameters, expected about {want:.3e}", p.name);
            assert!(q4 < f16 / 3 && largest < q4, "{}: q4 {q4} bytes", p.name);
            // docs/MODEL.md's table.
            let gb = |d| Llava::weight_bytes_estimate(&c, d).0 as f64 / 1e9;
            let work = Llava::working_bytes_estimate(&c, c.sequence_length(40)) as f64 / 1e9;
            eprintln!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {work:.2} |",
                p.name,
                gb(WeightDType::F32),
                gb(WeightDType::F16),
                gb(WeightDType::Q8),
                gb(WeightDType::Q4)
            );
        }
        assert_eq!(preset("bakllava-v1").unwrap().config().unwrap().text.kind, TextKind::Mistral);
        assert!(preset("llava-next").unwrap_err().contains("known: llava-1.5-7b, llava-1.5-13b, bakllava-v1"));
    }
}
