//! Any text as config.json: parse returns a config or an error naming the key, never panics,
//! and an accepted config's derived sizes are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::LlavaConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = LlavaConfig::parse(text, std::path::Path::new("config.json")) {
            assert!(c.vision_layers_to_run() <= c.vision.num_hidden_layers);
            let _ = c.image_tokens();
        }
    }
});
