//! One internal naming for Llava weights: the llava-hf Hub layout. The files in the wild use three
//! (docs/MODEL.md, "Inputs it accepts"), and a plain decoder checkpoint (LlamaForCausalLM: the
//! LLM a Llava was tuned from) a fourth; every name is mapped here, and nowhere else.

/// The canonical (llava-hf Hub) name of a tensor name found in a checkpoint, or None for names
/// that belong to no Llava module.
pub fn canonical(name: &str) -> Option<String> {
    // transformers 4.5x save_pretrained: everything under `model.`, lm_head at the top.
    if name == "lm_head.weight" {
        return Some("language_model.lm_head.weight".into());
    }
    if let Some(rest) = name.strip_prefix("model.language_model.") {
        return Some(format!("language_model.model.{rest}"));
    }
    if let Some(rest) = name.strip_prefix("model.vision_tower.") {
        return canonical_vision(rest);
    }
    if let Some(rest) = name.strip_prefix("model.multi_modal_projector.") {
        return Some(format!("multi_modal_projector.{rest}"));
    }
    if let Some(rest) = name.strip_prefix("vision_tower.") {
        return canonical_vision(rest);
    }
    // A plain decoder's own layout (`model.layers.N...`): in a Llava file every `model.` name
    // has one of the three prefixes above, so this is only ever the decoder.
    if let Some(rest) = name.strip_prefix("model.") {
        return Some(format!("language_model.model.{rest}"));
    }
    if name.starts_with("language_model.model.") || name == "language_model.lm_head.weight" || name.starts_with("multi_modal_projector.") {
        return Some(name.to_string());
    }
    None
}

/// `vision_model.X` (Hub, 4.5x) or `X` directly (transformers 5.24) under the vision tower.
fn canonical_vision(rest: &str) -> Option<String> {
    let inner = rest.strip_prefix("vision_model.").unwrap_or(rest);
    Some(format!("vision_tower.vision_model.{inner}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_layouts_meet() {
        let hub = [
            "vision_tower.vision_model.embeddings.patch_embedding.weight",
            "vision_tower.vision_model.encoder.layers.3.self_attn.q_proj.bias",
            "vision_tower.vision_model.pre_layrnorm.weight",
            "language_model.model.layers.7.mlp.down_proj.weight",
            "language_model.model.embed_tokens.weight",
            "language_model.lm_head.weight",
            "multi_modal_projector.linear_1.weight",
        ];
        let v45 = [
            "model.vision_tower.vision_model.embeddings.patch_embedding.weight",
            "model.vision_tower.vision_model.encoder.layers.3.self_attn.q_proj.bias",
            "model.vision_tower.vision_model.pre_layrnorm.weight",
            "model.language_model.layers.7.mlp.down_proj.weight",
            "model.language_model.embed_tokens.weight",
            "lm_head.weight",
            "model.multi_modal_projector.linear_1.weight",
        ];
        let v5 = [
            "vision_tower.embeddings.patch_embedding.weight",
            "vision_tower.encoder.layers.3.self_attn.q_proj.bias",
            "vision_tower.pre_layrnorm.weight",
            "language_model.model.layers.7.mlp.down_proj.weight",
            "language_model.model.embed_tokens.weight",
            "language_model.lm_head.weight",
            "multi_modal_projector.linear_1.weight",
        ];
        for i in 0..hub.len() {
            assert_eq!(canonical(hub[i]).as_deref(), Some(hub[i]));
            assert_eq!(canonical(v45[i]).as_deref(), Some(hub[i]), "{}", v45[i]);
            assert_eq!(canonical(v5[i]).as_deref(), Some(hub[i]), "{}", v5[i]);
        }
        assert_eq!(canonical("optimizer.state"), None);
        // LlamaForCausalLM (the Vicuna behind llava-1.5).
        assert_eq!(canonical("model.layers.7.mlp.down_proj.weight").as_deref(), Some("language_model.model.layers.7.mlp.down_proj.weight"));
        assert_eq!(canonical("model.norm.weight").as_deref(), Some("language_model.model.norm.weight"));
    }
}
