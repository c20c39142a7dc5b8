//! Any bytes as the user's image, through decoding and the CLIP preprocessing at a small model
//! size, both modes: an error naming the image or a `[3, S, S]` input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::preprocess::{ResizeMode, decode_image, preprocess};

fuzz_target!(|data: &[u8]| {
    let Ok(img) = decode_image(data, "fuzz.png") else { return };
    for mode in [ResizeMode::CenterCrop, ResizeMode::PadToSquare] {
        if let Ok(p) = preprocess(&img, 28, mode) {
            assert_eq!(p.pixels.len(), 3 * 28 * 28);
            assert!(p.pixels.iter().all(|v| v.is_finite()));
        }
    }
});
