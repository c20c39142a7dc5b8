use super::*;
use crate::config::{TextKind, VisionKind};

const LLAVA_HF: &str = LLAVA_1_5_7B_CONFIG;

fn parse(s: &str) -> Result<LlavaConfig, ModelError> {
    LlavaConfig::parse(s, Path::new("config.json"))
}

#[test]
fn seven_b_weights_fit_the_documented_budgets() {
    use crate::{Llava, WeightDType};
    let c = parse(LLAVA_HF).unwrap();
    let (q4, largest) = Llava::weight_bytes_estimate(&c, WeightDType::Q4);
    let (f16, _) = Llava::weight_bytes_estimate(&c, WeightDType::F16);
    eprintln!("7B weights: q4 {q4} bytes (largest buffer {largest}), f16 {f16}");
    // lm_head in Q8G32: 32064 rows of 4096 values and 128 f16 scales.
    assert_eq!(largest, 32064 * (4096 + 256));
    assert!((4.4e9..4.7e9).contains(&(q4 as f64)), "{q4}");
    assert!((13.5e9..14.2e9).contains(&(f16 as f64)), "{f16}");
}

#[test]
fn llava_hf_7b_config_gets_llama_defaults() {
    let c = parse(LLAVA_HF).unwrap();
    assert_eq!((c.text.hidden_size, c.text.num_hidden_layers, c.text.num_attention_heads, c.text.num_key_value_heads), (4096, 32, 32, 32));
    assert_eq!((c.text.head_dim, c.text.intermediate_size, c.text.vocab_size), (128, 11008, 32064));
    assert_eq!((c.text.rms_norm_eps, c.text.rope_theta), (1e-5, 10000.0));
    assert_eq!((c.vision.as_ref().unwrap().grid(), c.vision.as_ref().unwrap().head_dim(), c.image_tokens()), (24, 64, 576));
    assert_eq!(c.vision_layers_to_run(), 23, "feature layer -2 = output of encoder layer 22");
    assert_eq!((c.image_token_index, c.pad_token_id), (Some(32000), Some(32001)));
}

#[test]
fn transformers_5_rope_parameters_and_head_dim() {
    let s = LLAVA_HF.replace(r#""rms_norm_eps": 1e-05,"#, r#""rms_norm_eps": 1e-05, "head_dim": 64, "num_key_value_heads": 8, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},"#);
    let c = parse(&s).unwrap();
    assert_eq!((c.text.head_dim, c.text.num_key_value_heads, c.text.rope_theta), (64, 8, 500000.0));
}

#[test]
fn hostile_sizes_are_refused_with_key_value_and_limit_before_anything_is_allocated() {
    let with = |key: &str, value: &str| {
        // Replace the key's value wherever the 7B config has it, else add it to text_config.
        let v: Value = serde_json::from_str(LLAVA_HF).unwrap();
        let mut v = v;
        let (section, k) = key.split_once('.').map_or((None, key), |(s, k)| (Some(s), k));
        let obj = match section {
            Some(s) => v.get_mut(s).unwrap().as_object_mut().unwrap(),
            None => v.as_object_mut().unwrap(),
        };
        obj.insert(k.to_string(), serde_json::from_str(value).unwrap());
        parse(&v.to_string())
    };
    let cases = [
        ("text_config.num_hidden_layers", "4294967295", "text_config.num_hidden_layers is 4294967295; expected 1 to 1024"),
        ("text_config.num_hidden_layers", "0", "text_config.num_hidden_layers is 0; expected 1 to 1024"),
        ("vision_config.num_hidden_layers", "4294967295", "vision_config.num_hidden_layers is 4294967295; expected 1 to 256"),
        ("vision_config.image_size", "1000000000", "vision_config.image_size is 1000000000; expected 1 to 2048"),
        ("vision_config.patch_size", "1", "makes a 336x336 patch grid; at most 128x128"),
        ("text_config.vocab_size", "4000000000", "text_config.vocab_size is 4000000000; expected 1 to 1048576"),
        ("text_config.hidden_size", "0", "text_config.hidden_size is 0"),
        ("text_config.intermediate_size", "3000000000", "text_config.intermediate_size is 3000000000"),
        ("text_config.num_attention_heads", "0", "text_config.num_attention_heads is 0"),
        ("text_config.head_dim", "100000", "text_config.head_dim is 100000; expected 1 to 1024"),
        (
            "text_config.max_position_embeddings",
            "100",
            "the image alone takes 576 positions but text_config.max_position_embeddings is 100",
        ),
        ("text_config.rms_norm_eps", "0", "text_config.rms_norm_eps is 0; expected a positive finite number"),
        ("text_config.rms_norm_eps", "-1e-5", "text_config.rms_norm_eps is -0.00001; expected a positive"),
        ("text_config.rope_theta", "0", "text_config.rope_theta is 0; expected a positive finite number"),
        ("text_config.rope_theta", "1e300", "text_config.rope_theta is inf; expected a positive finite number"),
        ("vision_config.layer_norm_eps", "0", "vision_config.layer_norm_eps is 0"),
        ("vision_config.num_channels", "4", "vision_config.num_channels is 4; the image processor makes RGB images, so it must be 3"),
    ];
    for (key, value, want) in cases {
        let err = with(key, value).unwrap_err().to_string();
        assert!(err.starts_with("config.json: ") && err.contains(want), "{key} = {value}: {err} (wanted {want})");
    }
    // transformers 5 keeps theta in rope_parameters: the same check applies there.
    let s = LLAVA_HF
        .replace(r#""rms_norm_eps": 1e-05,"#, r#""rms_norm_eps": 1e-05, "rope_parameters": {"rope_type": "default", "rope_theta": 0.0},"#);
    assert!(parse(&s).unwrap_err().to_string().contains("rope_theta is 0"));
    // An id past u32 is not a token id.
    assert_eq!(with("pad_token_id", "8589934592").unwrap().pad_token_id, None);
}

#[test]
fn estimates_at_the_limits_are_instant_and_do_not_wrap() {
    use crate::{Llava, WeightDType};
    let mut c = parse(LLAVA_HF).unwrap();
    c.text.num_hidden_layers = limits::TEXT_LAYERS;
    c.text.vocab_size = limits::VOCAB;
    c.text.hidden_size = limits::HIDDEN;
    c.text.intermediate_size = limits::INTERMEDIATE;
    let (total, largest) = Llava::weight_bytes_estimate(&c, WeightDType::F32);
    // lm_head alone: 2^20 x 2^16 f32 = 2^38 bytes; 1024 layers of 3 x 2^18 x 2^16 f32 more.
    assert_eq!(largest, 1 << 38);
    assert!(total > 1024 * 3 * (1u64 << 36), "{total}");
    assert!(Llava::working_bytes_estimate(&c, 1 << 22) > 1 << 40);
}

/// llava-hf/llava-interleave-qwen-0.5b-hf's vision side as published (SigLIP so400m at 384 px).
const INTERLEAVE_VISION: &str = r#""vision_config": {"hidden_size": 1152, "image_size": 384, "intermediate_size": 4304,
    "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 26, "patch_size": 14,
    "vision_use_head": false}"#;

#[test]
fn siglip_towers_parse_with_their_own_defaults_and_rules() {
    let vision = |s: &str| {
        let start = LLAVA_HF.find(r#""vision_config""#).unwrap();
        let end = start + LLAVA_HF[start..].find('}').unwrap() + 1;
        format!("{}{}{}", &LLAVA_HF[..start], s, &LLAVA_HF[end..])
    };
    let full = |s: String| {
        s.replace(
            r#""vision_feature_layer": -2, "vision_feature_select_strategy": "default""#,
            r#""vision_feature_layer": -1, "vision_feature_select_strategy": "full""#,
        )
    };
    let c = parse(&full(vision(INTERLEAVE_VISION))).unwrap();
    assert_eq!(c.vision.as_ref().unwrap().kind, VisionKind::Siglip);
    // 27 x 27 patches and no class token: 729 image rows; layer -1 runs all 26 layers.
    assert_eq!((c.vision.as_ref().unwrap().grid(), c.image_tokens(), c.vision_layers_to_run()), (27, 729, 26));
    assert_eq!(c.vision.as_ref().unwrap().layer_norm_eps, 1e-6, "SiglipVisionConfig's default eps");
    // "default" would drop a real patch; another activation is not what the weights expect.
    let err = parse(&vision(INTERLEAVE_VISION)).unwrap_err().to_string();
    assert!(err.contains("drops a class token a siglip_vision_model does not have"), "{err}");
    let err = parse(&full(vision(&INTERLEAVE_VISION.replace(r#""patch_size": 14"#, r#""patch_size": 14, "hidden_act": "gelu""#))))
        .unwrap_err()
        .to_string();
    assert!(err.contains(r#"vision_config.hidden_act is "gelu"; a siglip_vision_model runs "gelu_pytorch_tanh""#), "{err}");
    let err = parse(&vision(r#""vision_config": {"model_type": "dinov2"}"#)).unwrap_err().to_string();
    assert!(err.contains(r#"vision_config.model_type is "dinov2"; supported: "clip_vision_model" and "siglip_vision_model""#), "{err}");
}

#[test]
fn mistral_decoders_get_mistrals_defaults_and_others_are_refused_by_name() {
    let text = |fields: &str| LLAVA_HF.replace(r#""model_type": "llama","#, fields);
    let c = parse(&text(r#""model_type": "mistral","#)).unwrap();
    assert_eq!(c.text.kind, TextKind::Mistral);
    // MistralConfig's defaults: 8 key/value heads, 14336 MLP, a 4096-position window.
    assert_eq!((c.text.num_key_value_heads, c.text.intermediate_size, c.text.sliding_window), (8, 14336, Some(4096)));
    assert_eq!(parse(&text(r#""model_type": "mistral", "sliding_window": null,"#)).unwrap().text.sliding_window, None);
    assert_eq!(parse(LLAVA_HF).unwrap().text.sliding_window, None, "LLaMA has no window");
    for (fields, want) in [
        (r#""model_type": "gemma","#, r#"text_config.model_type is "gemma"; supported: "llama", "mistral" and "qwen2""#),
        (r#""model_type": "llama", "attention_bias": true,"#, "text_config.attention_bias is true"),
        (r#""model_type": "llama", "tie_word_embeddings": 1,"#, "text_config.tie_word_embeddings is 1; expected true or false"),
        (r#""model_type": "qwen2", "use_sliding_window": true,"#, "text_config.use_sliding_window is true"),
        (r#""model_type": "mistral", "sliding_window": 0,"#, "text_config.sliding_window is 0; expected a positive integer or null"),
    ] {
        let err = parse(&text(fields)).unwrap_err().to_string();
        assert!(err.contains(want), "{fields}: {err}");
    }
}

#[test]
fn qwen2_decoders_get_qwen2s_defaults_biases_and_the_tie_from_either_level() {
    let text = |fields: &str| LLAVA_HF.replace(r#""model_type": "llama","#, fields);
    let c = parse(&text(r#""model_type": "qwen2","#)).unwrap();
    assert_eq!((c.text.kind, c.text.qkv_bias, c.text.tie_word_embeddings), (TextKind::Qwen2, true, false));
    // Qwen2Config's defaults where llava-hf's file is silent (vocab_size is set there).
    assert_eq!((c.text.intermediate_size, c.text.max_position_embeddings, c.text.rms_norm_eps), (22016, 4096, 1e-5));
    assert!(parse(&text(r#""model_type": "qwen2", "tie_word_embeddings": true,"#)).unwrap().text.tie_word_embeddings);
    let top = text(r#""model_type": "qwen2","#).replace(r#""tie_word_embeddings": false"#, r#""tie_word_embeddings": true"#);
    assert!(parse(&top).unwrap().text.tie_word_embeddings, "the top-level tie counts too");
    // A window Qwen2 does not use is no window.
    let c = parse(&text(r#""model_type": "qwen2", "sliding_window": 32768, "use_sliding_window": false,"#)).unwrap();
    assert_eq!(c.text.sliding_window, None);
    assert!(!parse(LLAVA_HF).unwrap().text.qkv_bias && !parse(LLAVA_HF).unwrap().text.tie_word_embeddings);
}

#[test]
fn feature_layer_lists_select_states_in_their_order() {
    let c = parse(&LLAVA_HF.replace(r#""vision_feature_layer": -2"#, r#""vision_feature_layer": [-2, 0, -24, 3]"#)).unwrap();
    // Hidden state 0 is the embeddings; -24 of a 24-layer tower is the first layer's output.
    assert_eq!((c.vision_feature_states(), c.vision_layers_to_run()), (vec![23, 0, 1, 3], 23));
    assert_eq!(parse(LLAVA_HF).unwrap().vision_feature_states(), vec![23]);
}

#[test]
fn unsupported_values_name_key_and_value() {
    let cases = [
        (LLAVA_HF.replace(r#""model_type": "llava""#, r#""model_type": "llava_next""#), "model_type is \"llava_next\""),
        (
            LLAVA_HF.replace(r#""vision_feature_select_strategy": "default""#, r#""vision_feature_select_strategy": "cls""#),
            "vision_feature_select_strategy is \"cls\"",
        ),
        (
            LLAVA_HF.replace(r#""vision_feature_layer": -2"#, r#""vision_feature_layer": []"#),
            "vision_feature_layer is []; expected a layer",
        ),
        (LLAVA_HF.replace(r#""vision_feature_layer": -2"#, r#""vision_feature_layer": [-2, "x"]"#), "vision_feature_layer is \"x\""),
        (
            LLAVA_HF.replace(r#""vision_feature_layer": -2"#, r#""vision_feature_layer": [-2, 25]"#),
            "vision_feature_layer 25 is outside a 24-layer",
        ),
        (LLAVA_HF.replace(r#""vision_feature_layer": -2"#, r#""vision_feature_layer": 2.5"#), "vision_feature_layer is 2.5"),
        (
            LLAVA_HF.replace(r#""image_size": 336"#, r#""image_size": "big""#),
            "vision_config.image_size is \"big\"; expected a non-negative integer",
        ),
        (
            LLAVA_HF.replace(r#""rms_norm_eps": 1e-05"#, r#""rms_norm_eps": 1e-05, "rope_scaling": {"type": "linear", "factor": 2.0}"#),
            "rope_scaling type \"linear\"",
        ),
        (LLAVA_HF.replace(r#""projector_hidden_act": "gelu""#, r#""projector_hidden_act": "relu""#), "projector_hidden_act is \"relu\""),
        ("{".to_string(), "not valid JSON"),
        (r#"{"model_type": "llava"}"#.to_string(), "missing vision_config"),
    ];
    for (text, want) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("config.json: ") && err.contains(want), "{err} (wanted {want})");
    }
}
