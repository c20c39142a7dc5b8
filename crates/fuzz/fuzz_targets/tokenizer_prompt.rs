//! Any question, answer prefix and text context through the tiny model's tokenizer and the
//! prompt template, with and without the image: an error, or a prompt with exactly one image
//! token at its offset (none without the image), never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llava_lens_model::{tiny, LlavaTokenizer, PromptParts};

fuzz_target!(|data: &[u8]| {
    static TOK: OnceLock<LlavaTokenizer> = OnceLock::new();
    let tok = TOK.get_or_init(|| {
        let json = tiny::tiny_tokenizer_json();
        let image = tiny::tiny_config(false)["image_token_index"].as_u64().map(|i| i as u32);
        LlavaTokenizer::from_bytes(json.as_bytes(), std::path::Path::new("tokenizer.json"), image).unwrap()
    });
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\u{1}');
    let (q, prefix, context) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    for image in [true, false] {
        if let Ok(p) = tok.prompt_with(PromptParts { image, context }, q, prefix) {
            let count = p.ids.iter().filter(|&&id| Some(id) == tok.image_token).count();
            assert_eq!(count, usize::from(image));
            if let Some(at) = p.image_offset {
                assert_eq!(Some(p.ids[at]), tok.image_token);
            }
        }
    }
});
