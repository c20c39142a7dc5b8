//! Any text as config.json, then everything the page plans from an accepted config before a
//! download (weight and working-memory estimates in every dtype, the fit check, the progress
//! total, the position check): errors naming the key, never a panic, an overflow or a hang, and
//! an accepted config's derived sizes consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::{Llava, LlavaConfig, WeightDType};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = LlavaConfig::parse(text, std::path::Path::new("config.json")) else { return };
    assert!(c.vision_layers_to_run() <= c.vision.as_ref().map_or(0, |v| v.num_hidden_layers));
    assert!(c.image_tokens() < c.text.max_position_embeddings);
    for dtype in [WeightDType::F32, WeightDType::F16, WeightDType::Q8, WeightDType::Q4] {
        let (total, largest) = Llava::weight_bytes_estimate(&c, dtype);
        assert!(largest <= total, "{largest} > {total}");
        let _ = llava_lens_web::files::fit_problem(largest, 1 << 30, dtype.name());
    }
    let seq = c.image_tokens() + 64;
    let _ = Llava::working_bytes_estimate(&c, seq);
    let _ = Llava::tensor_count(&c);
    let _ = c.check_positions(40, 16);
});
