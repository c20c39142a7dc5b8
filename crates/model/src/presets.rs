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

    /// Its config.json as published (what scripts/torch_explain.py builds transformers' model from).
    pub fn config_json(&self) -> &'static str {
        self.config
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

/// llava-hf/llava-interleave-qwen-0.5b-hf: SigLIP so400m at 384 px (26 layers, 27 x 27 patches,
/// the last layer's features, "full") and Qwen1.5-0.5B-Chat (24 layers of width 1024, q/k/v
/// biases, lm_head tied to the embeddings, named in text_config only).
const LLAVA_INTERLEAVE_QWEN_0_5B_CONFIG: &str = r#"{
  "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 151646,
  "model_type": "llava", "projector_hidden_act": "gelu",
  "text_config": {"_name_or_path": "Qwen/Qwen1.5-0.5B-Chat", "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_size": 1024, "intermediate_size": 2816, "max_position_embeddings": 32768,
    "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 16, "num_hidden_layers": 24,
    "num_key_value_heads": 16, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "use_sliding_window": false, "vocab_size": 152000},
  "vision_config": {"hidden_act": "gelu_pytorch_tanh", "hidden_size": 1152, "image_size": 384, "intermediate_size": 4304,
    "layer_norm_eps": 1e-06, "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 26,
    "patch_size": 14, "vision_use_head": false},
  "vision_feature_layer": -1, "vision_feature_select_strategy": "full"}"#;

/// llava-hf/llava-interleave-qwen-7b-hf: the same SigLIP tower and Qwen1.5-7B-Chat (Qwen2Config's
/// defaults: 32 layers of width 4096, 32 heads, untied).
const LLAVA_INTERLEAVE_QWEN_7B_CONFIG: &str = r#"{
  "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 151646,
  "model_type": "llava", "projector_hidden_act": "gelu",
  "text_config": {"_name_or_path": "Qwen/Qwen1.5-7B-Chat", "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643,
    "eos_token_id": 151645, "intermediate_size": 11008, "max_position_embeddings": 32768, "max_window_layers": 28,
    "model_type": "qwen2", "rope_theta": 1000000.0, "sliding_window": null, "use_sliding_window": false,
    "vocab_size": 152000},
  "vision_config": {"hidden_act": "gelu_pytorch_tanh", "hidden_size": 1152, "image_size": 384, "intermediate_size": 4304,
    "layer_norm_eps": 1e-06, "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 26,
    "patch_size": 14, "vision_use_head": false},
  "vision_feature_layer": -1, "vision_feature_select_strategy": "full"}"#;

/// Smallest first (by q4 weights): the page suggests the first one.
pub const PRESETS: [Preset; 5] = [
    Preset { name: "llava-interleave-qwen-0.5b", hub: "llava-hf/llava-interleave-qwen-0.5b-hf", config: LLAVA_INTERLEAVE_QWEN_0_5B_CONFIG },
    Preset { name: "llava-1.5-7b", hub: "llava-hf/llava-1.5-7b-hf", config: LLAVA_1_5_7B_CONFIG },
    Preset { name: "bakllava-v1", hub: "llava-hf/bakLLaVA-v1-hf", config: BAKLLAVA_V1_CONFIG },
    Preset { name: "llava-interleave-qwen-7b", hub: "llava-hf/llava-interleave-qwen-7b-hf", config: LLAVA_INTERLEAVE_QWEN_7B_CONFIG },
    Preset { name: "llava-1.5-13b", hub: "llava-hf/llava-1.5-13b-hf", config: LLAVA_1_5_13B_CONFIG },
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
            // Parameters as published: 7.06e9, 13.35e9, 7.57e9, 8.14e9; 0.865e9 from the 0.5B
            // model.safetensors of 1.73 GB in bf16 (f16 = 2 bytes
            // each, plus the CLIP tower's last layer, which llava-lens does not load).
            let params = f16 as f64 / 2.0;
            let want = match p.name {
                "llava-1.5-7b" => 7.06e9,
                "llava-1.5-13b" => 13.35e9,
                "llava-interleave-qwen-0.5b" => 0.865e9,
                "llava-interleave-qwen-7b" => 8.14e9,
                _ => 7.57e9,
            };
            assert!((params / want - 1.0).abs() < 0.02, "{}: {params:.3e} parameters, expected about {want:.3e}", p.name);
            // The vision tower stays f16 and the vocabulary q8 (docs/MODEL.md), which is most of
            // the 0.5B model: q4 saves a third there, two thirds at 7B.
            assert!(q4 < f16 * 2 / 3 && largest < q4, "{}: q4 {q4} bytes", p.name);
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
        let small = preset("llava-interleave-qwen-0.5b").unwrap().config().unwrap();
        assert_eq!((small.text.kind, small.text.tie_word_embeddings, small.text.sliding_window), (TextKind::Qwen2, true, None));
        assert_eq!((small.vision.as_ref().unwrap().grid(), small.image_tokens(), small.vision_layers_to_run()), (27, 729, 26));
        let big = preset("llava-interleave-qwen-7b").unwrap().config().unwrap();
        assert_eq!((big.text.hidden_size, big.text.num_key_value_heads, big.text.tie_word_embeddings), (4096, 32, false));
        let weights = |p: &Preset| Llava::weight_bytes_estimate(&p.config().unwrap(), WeightDType::Q4).0;
        assert!(PRESETS.windows(2).all(|w| weights(&w[0]) <= weights(&w[1])), "smallest first");
        assert!(preset("llava-next").unwrap_err().contains("known: llava-interleave-qwen-0.5b, llava-1.5-7b"));
    }
}
