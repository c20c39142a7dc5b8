//! Any text as a share link's fragment, then what the page does with one it accepts: decode the
//! recorded image and draw both maps with every palette and upsampling, and the "What if…"
//! results it carries (each layer's patching map, each answer word's map). Errors, never a panic.
//! Plain bytes rarely inflate to a valid explanation, so half the inputs are first wrapped as a
//! link (deflate + base64) to reach the checks behind the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_explain::render::{Palette, RenderOptions, Upsample, render};
use llava_lens_web::share;

fuzz_target!(|data: &[u8]| {
    let fragment = match data.split_first() {
        Some((0, json)) => share::fragment_of_json(json),
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    let Ok(r) = share::decode(&fragment) else { return };
    let Ok(img) = image::load_from_memory(&r.crop_jpeg) else { return };
    let crop = img.to_rgb8();
    for values in [&r.patch_scores, &r.baseline_map] {
        for palette in [Palette::Signed, Palette::Viridis, Palette::Gray] {
            for upsample in [Upsample::Crisp, Upsample::Smooth] {
                let opts = RenderOptions { palette, upsample, ..Default::default() };
                render(&crop, values, r.grid, &opts).expect("a decoded link always renders");
            }
        }
    }
    let Some(w) = &r.whatif else { return };
    if let Some(p) = &w.patching {
        for layer in 0..p.patching.resid.len() {
            assert_eq!(p.patching.patch_map(layer).len(), p.patching.image_tokens);
        }
    }
    for word in w.answer.iter().flat_map(|a| &a.recorded) {
        render(&crop, &word.patch_scores, word.grid, &RenderOptions::default()).expect("a decoded word always renders");
    }
    if let Some(z) = &w.zoom {
        image::load_from_memory(&z.window_jpeg).expect("a checked window decodes");
    }
});
