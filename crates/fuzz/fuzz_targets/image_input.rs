//! Any bytes as the user's image, through decoding and the CLIP and SigLIP processors at a small
//! model size, both modes: an error naming the image or a `[3, S, S]` input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, decode_image, preprocess};

fuzz_target!(|data: &[u8]| {
    let Ok(img) = decode_image(data, "fuzz.png") else { return };
    let processors = [ImageProcessor::clip(28), ImageProcessor::siglip(28)];
    for (mode, processor) in [ResizeMode::CenterCrop, ResizeMode::PadToSquare].into_iter().flat_map(|m| processors.iter().map(move |p| (m, p))) {
        if let Ok(p) = preprocess(&img, processor, mode) {
            assert_eq!(p.pixels.len(), 3 * 28 * 28);
            assert!(p.pixels.iter().all(|v| v.is_finite()));
        }
    }
});
