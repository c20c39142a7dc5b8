//! Any bytes as tokenizer.json (the page's worker reads it from any server): an error naming the
//! file or a tokenizer that builds the paper's prompt, never a panic (a panic aborts the worker).
//! The image token id is the tiny test model's (454), so mutations of its tokenizer.json (the
//! seed corpus) get past the id check to the prompt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::LlavaTokenizer;

fuzz_target!(|data: &[u8]| {
    if let Ok(tok) = LlavaTokenizer::from_bytes(data, std::path::Path::new("fuzz/tokenizer.json"), Some(454)) {
        let _ = tok.prompt("What is the color of the dog?", "The color of the dog is");
        let _ = tok.decode(&[0, 1, 2, 3]);
    }
});
