//! The decoder's part of config.json: `text_config` inside a Llava config, or the whole file of
//! a plain decoder checkpoint (`LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM`).
//! Defaults are the HF classes' own; errors name the key where it is in the file.

use std::path::Path;

use serde_json::Value;

use super::reader::Reader;
use super::{TextConfig, TextKind};
use crate::ModelError;

/// The decoder config from `text_cfg`; `root` is the file's top level, which may also tie the
/// embeddings (transformers' LlavaConfig reads `tie_word_embeddings` at either level).
pub(super) fn parse(text_cfg: &Reader<'_>, root: &Reader<'_>, path: &Path) -> Result<TextConfig, ModelError> {
    let text_kind = match text_cfg.str_or("model_type", "llama")?.as_str() {
        "llama" => TextKind::Llama,
        "mistral" => TextKind::Mistral,
        "qwen2" => TextKind::Qwen2,
        other => {
            return Err(ModelError::config(
                path,
                format!("{} is {other:?}; supported: \"llama\", \"mistral\" and \"qwen2\"", text_cfg.key("model_type")),
            ));
        }
    };
    // LLaMA's optional biases put one on o_proj (and the MLP's) too, which no Llava
    // checkpoint has: refused rather than half-loaded.
    for key in ["attention_bias", "mlp_bias"] {
        if text_cfg.v.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(ModelError::config(path, format!("{} is true; llava-lens's LLaMA layers have no such biases", text_cfg.key(key))));
        }
    }
    // Qwen2 windows only the layers from max_window_layers on, and only when asked to.
    if text_kind == TextKind::Qwen2 && text_cfg.v.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return Err(ModelError::config(
            path,
            format!(
                "{} is true; llava-lens runs Qwen2 with full attention in every layer (as the llava-interleave checkpoints do)",
                text_cfg.key("use_sliding_window")
            ),
        ));
    }
    let tied = |r: &Reader<'_>| -> Result<bool, ModelError> {
        match r.v.get("tie_word_embeddings") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(r.wrong("tie_word_embeddings", "true or false", v)),
        }
    };
    let tie_word_embeddings = tied(root)? || tied(text_cfg)?;
    let act = text_cfg.str_or("hidden_act", "silu")?;
    if act != "silu" {
        return Err(ModelError::config(path, format!("{} is {act:?}; only \"silu\" is supported", text_cfg.key("hidden_act"))));
    }
    let hidden = text_cfg.usize_or("hidden_size", 4096)?;
    let heads = text_cfg.usize_or("num_attention_heads", 32)?;
    let rope = text_cfg.child_opt("rope_parameters")?;
    if let Some(scaling) = text_cfg.v.get("rope_scaling").filter(|v| !v.is_null()) {
        let kind = scaling.get("rope_type").or_else(|| scaling.get("type")).and_then(Value::as_str).unwrap_or("?");
        if kind != "default" {
            return Err(ModelError::config(
                path,
                format!("{} type {kind:?} is not supported (plain RoPE only)", text_cfg.key("rope_scaling")),
            ));
        }
    }
    let rope_theta = match &rope {
        Some(p) => p.f32_or("rope_theta", 10000.0)?,
        None => text_cfg.f32_or("rope_theta", 10000.0)?,
    };
    // MistralConfig's defaults differ from LlamaConfig's where its checkpoints rely on them.
    let (vocab, intermediate, kv_default, eps, window, positions) = match text_kind {
        TextKind::Llama => (32000, 11008, heads, 1e-6, None, 2048),
        TextKind::Mistral => (32000, 14336, 8, 1e-6, Some(4096), 4096 * 32),
        TextKind::Qwen2 => (151936, 22016, heads, 1e-6, None, 32768),
    };
    let sliding_window = match text_cfg.v.get("sliding_window") {
        None => window,
        Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|&w| w > 0).ok_or_else(|| {
            ModelError::config(path, format!("{} is {v}; expected a positive integer or null", text_cfg.key("sliding_window")))
        })? as usize),
    };
    Ok(TextConfig {
        kind: text_kind,
        qkv_bias: text_kind == TextKind::Qwen2,
        tie_word_embeddings,
        sliding_window: if text_kind == TextKind::Mistral { sliding_window } else { None },
        vocab_size: text_cfg.usize_or("vocab_size", vocab)?,
        hidden_size: hidden,
        intermediate_size: text_cfg.usize_or("intermediate_size", intermediate)?,
        num_hidden_layers: text_cfg.usize_or("num_hidden_layers", 32)?,
        num_attention_heads: heads,
        num_key_value_heads: text_cfg.usize_or("num_key_value_heads", kv_default)?,
        head_dim: text_cfg.usize_or("head_dim", hidden / heads.max(1))?,
        rms_norm_eps: text_cfg.f32_or("rms_norm_eps", eps)?,
        rope_theta,
        max_position_embeddings: text_cfg.usize_or("max_position_embeddings", positions)?,
    })
}
