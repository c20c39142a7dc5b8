//! Any question and answer prefix through the tiny model's tokenizer and the prompt template:
//! an error or a prompt with exactly one image token, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llava_lens_model::{tiny, LlavaTokenizer};

fuzz_target!(|data: &[u8]| {
    static TOK: OnceLock<LlavaTokenizer> = OnceLock::new();
    let tok = TOK.get_or_init(|| {
        let json = tiny::tiny_tokenizer_json();
        let image = tiny::tiny_config(false)["image_token_index"].as_u64().unwrap() as u32;
        LlavaTokenizer::from_bytes(json.as_bytes(), std::path::Path::new("tokenizer.json"), image).unwrap()
    });
    let text = String::from_utf8_lossy(data);
    let (q, prefix) = text.split_once('\u{1}').unwrap_or((&text, ""));
    if let Ok(p) = tok.prompt(q, prefix) {
        assert_eq!(p.ids.iter().filter(|&&id| id == tok.image_token).count(), 1);
        assert_eq!(p.ids[p.image_offset], tok.image_token);
    }
});
