//! The image processors against HF transformers' Pillow-based ones, value for value:
//! tests/data/golden/preprocess.safetensors was written by
//! scripts/golden/make_preprocess_fixtures.py (CLIPImageProcessorPil and SiglipImageProcessorPil,
//! Pillow 13) for four non-square PNGs in tests/data/images, one with an alpha channel, at the
//! real models' sizes and small ones (down- and upscaling). PNG decoding is lossless in both, so
//! any difference is the processor's.

use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, load_image, preprocess};
use llava_lens_tests::golden::{data, preprocess_golden};

const IMAGES: [&str; 4] = ["scene-500x375", "tall-301x689", "wide-alpha-640x233", "small-97x61"];

fn processor(kind: &str, size: u32) -> ImageProcessor {
    match kind {
        "clip" => ImageProcessor::clip(size),
        _ => ImageProcessor::siglip(size),
    }
}

/// Every case of the fixture: (image, processor kind, size).
fn cases() -> Vec<(&'static str, &'static str, u32)> {
    let mut out: Vec<_> =
        IMAGES.iter().flat_map(|&i| [("clip", 56), ("clip", 168), ("siglip", 28), ("siglip", 96)].map(|(k, s)| (i, k, s))).collect();
    out.extend([("scene-500x375", "clip", 336), ("tall-301x689", "siglip", 384)]);
    out
}

#[test]
fn resized_pixels_are_pillows_exactly() {
    let g = preprocess_golden();
    eprintln!("fixture from transformers {} / Pillow {}", g.meta["transformers"], g.meta["pillow"]);
    for (image, kind, size) in cases() {
        let img = load_image(&data(&format!("images/{image}.png"))).unwrap();
        let got = preprocess(&img, &processor(kind, size), ResizeMode::CenterCrop).unwrap();
        let want = g.u8(&format!("{image}.{kind}{size}"));
        let s = size as usize;
        // The fixture is CHW; the view is HWC.
        let mut differ = 0;
        for (i, p) in got.crop_rgb.pixels().enumerate() {
            for c in 0..3 {
                differ += usize::from(p[c] != want[c * s * s + i]);
            }
        }
        assert_eq!(differ, 0, "{image} {kind}{size}: {differ} of {} values differ from Pillow", want.len());
    }
}

#[test]
fn normalised_values_are_numpys_exactly() {
    let g = preprocess_golden();
    for kind in ["clip", "siglip"] {
        let table = g.f32(&format!("{kind}.table"));
        let p = processor(kind, 16);
        for c in 0..3 {
            for v in 0..=255u8 {
                let want = table[c * 256 + v as usize];
                assert_eq!(p.normalise(v, c).to_bits(), want.to_bits(), "{kind} channel {c} level {v}: {} vs HF {want}", p.normalise(v, c));
            }
        }
    }
    // And through the whole pipeline: the pixels are the table at the levels.
    let (image, kind, size) = ("wide-alpha-640x233", "siglip", 96);
    let img = load_image(&data(&format!("images/{image}.png"))).unwrap();
    let got = preprocess(&img, &processor(kind, size), ResizeMode::CenterCrop).unwrap().pixels;
    let (levels, table) = (g.u8(&format!("{image}.{kind}{size}")), g.f32(&format!("{kind}.table")));
    let plane = (size * size) as usize;
    for (i, (px, l)) in got.iter().zip(levels).enumerate() {
        assert_eq!(px.to_bits(), table[i / plane * 256 + *l as usize].to_bits(), "pixel {i}");
    }
}

#[test]
fn the_alpha_image_is_composited_on_white() {
    // HF composites transparency onto white: a transparent pixel is white whatever colour it
    // holds, an opaque one keeps its colour (dropping the alpha channel would keep them all).
    let path = data("images/wide-alpha-640x233.png");
    let rgba = image::open(&path).unwrap().to_rgba8();
    let rgb = load_image(&path).unwrap();
    let transparent = rgba.enumerate_pixels().find(|(_, _, p)| p[3] == 0 && p.0[..3] != [255; 3]).unwrap();
    let opaque = rgba.enumerate_pixels().find(|(_, _, p)| p[3] == 255).unwrap();
    assert_eq!(rgb.get_pixel(transparent.0, transparent.1).0, [255; 3]);
    assert_eq!(rgb.get_pixel(opaque.0, opaque.1).0, opaque.2.0[..3]);
}
