//! `llava-lens make-tiny`: a deterministic random Llava in HF format (config.json,
//! model.safetensors in the llava-hf Hub layout, tokenizer.json), with Llava-1.5's exact
//! structure at toy sizes: a 56 x 56 image in 14-pixel patches (4 x 4 grid), 3 CLIP layers
//! (feature layer -2), a 2-layer LLaMA with optional grouped-query attention, and a small BPE
//! tokenizer in the LLaMA format (byte fallback, so any text encodes) covering the prompt words.

use llava_lens_tensor::Rng;
use serde_json::{Value, json};

use crate::LlavaConfig;

/// Words the tiny tokenizer has whole pieces for: the prompt template and the synthetic-scene
/// vocabulary (shapes, colours).
const WORDS: &[&str] = &[
    "USER",
    "ASSISTANT",
    "What",
    "is",
    "the",
    "color",
    "of",
    "The",
    "dog",
    "cat",
    "a",
    "an",
    "there",
    "in",
    "image",
    "shape",
    "none",
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "white",
    "black",
    "gray",
    "brown",
    "pink",
];

/// The tokenizer.json text (LLaMA's normaliser, decoder and template; a small BPE vocabulary).
pub fn tiny_tokenizer_json() -> String {
    let mut vocab: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut chars: Vec<String> = vec!["▁".into()];
    for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:?.,!'-".chars() {
        chars.push(c.to_string());
    }
    vocab.extend(chars);
    for word in WORDS {
        let piece: Vec<String> = std::iter::once("▁".to_string()).chain(word.chars().map(|c| c.to_string())).collect();
        let mut acc = piece[0].clone();
        for next in &piece[1..] {
            let merged = format!("{acc}{next}");
            if !vocab.contains(&merged) {
                merges.push((acc.clone(), next.clone()));
                vocab.push(merged.clone());
            }
            acc = merged;
        }
    }
    let n = vocab.len();
    let vocab_map: serde_json::Map<String, Value> = vocab.iter().enumerate().map(|(i, p)| (p.clone(), json!(i))).collect();
    let added = |id: usize, content: &str| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let t = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"), added(n, "<image>"), added(n + 1, "<pad>")],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab_map,
            "merges": merges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()
        }
    });
    serde_json::to_string_pretty(&t).unwrap()
}

/// Token count of the tiny tokenizer including `<image>` and `<pad>`.
fn tiny_vocab_len(tokenizer_json: &str) -> usize {
    let v: Value = serde_json::from_str(tokenizer_json).unwrap();
    v["model"]["vocab"].as_object().unwrap().len() + 2
}

/// config.json of the tiny model (transformers 4.5x style, all fields explicit).
pub fn tiny_config(gqa: bool) -> Value {
    let tok = tiny_tokenizer_json();
    let n = tiny_vocab_len(&tok);
    let image_token = n - 2;
    json!({
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": image_token,
        "pad_token_id": image_token + 1,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "image_seq_length": 16,
        "multimodal_projector_bias": true,
        "tie_word_embeddings": false,
        "vision_config": {
            "model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
            "num_attention_heads": 4, "num_channels": 3, "image_size": 56, "patch_size": 14, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "projection_dim": 32
        },
        "text_config": {
            "model_type": "llama", "vocab_size": n.next_multiple_of(64), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": if gqa { 2 } else { 4 }, "head_dim": 16,
            "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
            "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": image_token + 1
        }
    })
}

/// Every tensor of a Llava with `c`'s shapes, in the Hub layout, seeded. Matrices have std
/// 1/sqrt(fan_in) (activations stay O(1) through the layers, so logits have real margins);
/// norm weights near 1; biases and embeddings small but non-zero.
pub fn tiny_weights(c: &LlavaConfig, seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut mat = |out: &mut Vec<_>, name: String, rows: usize, cols: usize| {
        let v = rng.normal(rows * cols, 1.0 / (cols as f32).sqrt());
        out.push((name, vec![rows, cols], v));
    };
    let t = &c.text;
    let vp = "vision_tower.vision_model";
    let mut rng2 = Rng::new(seed ^ 0xABCD);
    let mut vecs: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut vec_of = |name: String, len: usize, center: f32, std: f32| {
        let data = rng2.normal(len, std).into_iter().map(|x| x + center).collect();
        vecs.push((name, vec![len], data));
    };
    // The vision side first (the draw order is what makes the committed test model).
    if let Some(v) = &c.vision {
        let p = v.patch_size;
        let conv = Rng::new(seed + 1).normal(v.hidden_size * v.num_channels * p * p, 1.0 / ((v.num_channels * p * p) as f32).sqrt());
        out.push((format!("{vp}.embeddings.patch_embedding.weight"), vec![v.hidden_size, v.num_channels, p, p], conv));
        vec_of(format!("{vp}.embeddings.class_embedding"), v.hidden_size, 0.0, 0.5);
        out.push((
            format!("{vp}.embeddings.position_embedding.weight"),
            vec![v.num_patches() + 1, v.hidden_size],
            Rng::new(seed + 2).normal((v.num_patches() + 1) * v.hidden_size, 0.5),
        ));
        for ln in ["pre_layrnorm", "post_layernorm"] {
            vec_of(format!("{vp}.{ln}.weight"), v.hidden_size, 1.0, 0.1);
            vec_of(format!("{vp}.{ln}.bias"), v.hidden_size, 0.0, 0.05);
        }
        for i in 0..v.num_hidden_layers {
            let l = format!("{vp}.encoder.layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                mat(&mut out, format!("{l}.self_attn.{proj}.weight"), v.hidden_size, v.hidden_size);
                vec_of(format!("{l}.self_attn.{proj}.bias"), v.hidden_size, 0.0, 0.05);
            }
            for ln in ["layer_norm1", "layer_norm2"] {
                vec_of(format!("{l}.{ln}.weight"), v.hidden_size, 1.0, 0.1);
                vec_of(format!("{l}.{ln}.bias"), v.hidden_size, 0.0, 0.05);
            }
            mat(&mut out, format!("{l}.mlp.fc1.weight"), v.intermediate_size, v.hidden_size);
            vec_of(format!("{l}.mlp.fc1.bias"), v.intermediate_size, 0.0, 0.05);
            mat(&mut out, format!("{l}.mlp.fc2.weight"), v.hidden_size, v.intermediate_size);
            vec_of(format!("{l}.mlp.fc2.bias"), v.hidden_size, 0.0, 0.05);
        }
        mat(&mut out, "multi_modal_projector.linear_1.weight".into(), t.hidden_size, v.hidden_size);
        vec_of("multi_modal_projector.linear_1.bias".into(), t.hidden_size, 0.0, 0.05);
        mat(&mut out, "multi_modal_projector.linear_2.weight".into(), t.hidden_size, t.hidden_size);
        vec_of("multi_modal_projector.linear_2.bias".into(), t.hidden_size, 0.0, 0.05);
    }
    let lp = "language_model.model";
    out.push((
        format!("{lp}.embed_tokens.weight"),
        vec![t.vocab_size, t.hidden_size],
        Rng::new(seed + 3).normal(t.vocab_size * t.hidden_size, 1.0),
    ));
    let (q, kv) = (t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim);
    for i in 0..t.num_hidden_layers {
        let l = format!("{lp}.layers.{i}");
        mat(&mut out, format!("{l}.self_attn.q_proj.weight"), q, t.hidden_size);
        mat(&mut out, format!("{l}.self_attn.k_proj.weight"), kv, t.hidden_size);
        mat(&mut out, format!("{l}.self_attn.v_proj.weight"), kv, t.hidden_size);
        mat(&mut out, format!("{l}.self_attn.o_proj.weight"), t.hidden_size, q);
        mat(&mut out, format!("{l}.mlp.gate_proj.weight"), t.intermediate_size, t.hidden_size);
        mat(&mut out, format!("{l}.mlp.up_proj.weight"), t.intermediate_size, t.hidden_size);
        mat(&mut out, format!("{l}.mlp.down_proj.weight"), t.hidden_size, t.intermediate_size);
        vec_of(format!("{l}.input_layernorm.weight"), t.hidden_size, 1.0, 0.1);
        vec_of(format!("{l}.post_attention_layernorm.weight"), t.hidden_size, 1.0, 0.1);
    }
    vec_of(format!("{lp}.norm.weight"), t.hidden_size, 1.0, 0.1);
    mat(&mut out, "language_model.lm_head.weight".into(), t.vocab_size, t.hidden_size);
    out.extend(vecs);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes the tiny model's three files into `dir` (created if needed).
#[cfg(not(target_arch = "wasm32"))]
pub fn write_tiny(dir: &std::path::Path, seed: u64, gqa: bool) -> Result<LlavaConfig, crate::ModelError> {
    use crate::ModelError;
    use safetensors::tensor::{Dtype, TensorView};
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let config_json = serde_json::to_string_pretty(&tiny_config(gqa)).unwrap();
    let config_path = dir.join("config.json");
    let config = LlavaConfig::parse(&config_json, &config_path)?;
    let tensors = tiny_weights(&config, seed);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.into_iter().map(|(n, s, v)| (n, s, bytemuck::cast_slice(&v).to_vec())).collect();
    let views: Vec<(String, TensorView<'_>)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"))).collect();
    // One metadata entry: safetensors writes its metadata HashMap in iteration order, and the
    // file must be byte-for-byte reproducible (the committed test model is checked against it).
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| ModelError::Safetensors { path: dir.join("model.safetensors"), detail: format!("{e:?}") })?;
    let write = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).map_err(|e| ModelError::io(dir.join(name), e));
    write("config.json", config_json.as_bytes())?;
    write("model.safetensors", &st)?;
    write("tokenizer.json", tiny_tokenizer_json().as_bytes())?;
    Ok(config)
}
