//! An example's object mask as the patch grid sees it: for each patch, the share of its pixels
//! that are the object. Reports score the pointing game and the map's mass against it
//! (docs/BATCH.md, "Reports"), as `eval pointing` does with the scenes' exact masks.

use std::path::Path;

use anyhow::{Context, bail};
use image::ColorType;
use llava_lens_explain::explanation::Crop;
use llava_lens_model::config::VisionConfig;
use llava_lens_model::preprocess::Preprocessed;

/// [`coverage`] of the patch grid `vision` lays over `pre`: the crop box and grid `explain`'s
/// document records for this image (`Preprocessed::patch_region`, `VisionConfig::grid`), known
/// before the GPU runs, so the batch's loader thread reads the mask ahead of it.
pub fn coverage_of_view(path: &Path, value: Option<u32>, pre: &Preprocessed, vision: &VisionConfig) -> anyhow::Result<Vec<f32>> {
    // The same call `document` makes, so the box is the one written into the line's `crop`.
    let (_, c) = pre.patch_region(vision.covered_pixels());
    let crop = Crop { x: c.x, y: c.y, width: c.width, height: c.height };
    coverage(path, value, pre.original, &crop, vision.grid())
}

/// The share of each patch of a `grid x grid` map, drawn over `crop` of the original image, that
/// the mask marks: pixels equal to `value`, or any non-zero pixel when `value` is None. `original`
/// is the image's (width, height); the mask must have that size. A pixel belongs to the patch its
/// centre falls in; patches the image does not reach (padding) cover nothing.
pub fn coverage(path: &Path, value: Option<u32>, original: (u32, u32), crop: &Crop, grid: usize) -> anyhow::Result<Vec<f32>> {
    let img = image::open(path).with_context(|| format!("reading the mask {}", path.display()))?;
    let (w, h) = (img.width(), img.height());
    if (w, h) != original {
        bail!("the mask {} is {w}x{h}, the image {}x{}: a mask must be the image's size", path.display(), original.0, original.1);
    }
    // A 16-bit label map keeps ids past 255; anything else is read as 8-bit gray.
    let sixteen = matches!(img.color(), ColorType::L16 | ColorType::La16 | ColorType::Rgb16 | ColorType::Rgba16);
    let labels: Vec<u32> = if sixteen {
        img.into_luma16().into_raw().into_iter().map(u32::from).collect()
    } else {
        img.into_luma8().into_raw().into_iter().map(u32::from).collect()
    };
    let (mut inside, mut area) = (vec![0f32; grid * grid], vec![0f32; grid * grid]);
    for (i, &label) in labels.iter().enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        let u = (x as f32 + 0.5 - crop.x) / crop.width;
        let v = (y as f32 + 0.5 - crop.y) / crop.height;
        if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
            continue;
        }
        let cell = ((v * grid as f32) as usize).min(grid - 1) * grid + ((u * grid as f32) as usize).min(grid - 1);
        area[cell] += 1.0;
        if value.map_or(label != 0, |want| label == want) {
            inside[cell] += 1.0;
        }
    }
    Ok(inside.iter().zip(&area).map(|(&i, &a)| if a > 0.0 { i / a } else { 0.0 }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_the_object_pixels_of_each_patch_through_the_crop() {
        let dir = std::env::temp_dir().join(format!("llava-lens-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 8x4 image; the object (label 2) fills the left 4x4 square's top half; label 1 elsewhere.
        let mut img = image::GrayImage::from_pixel(8, 4, image::Luma([1u8]));
        for y in 0..2 {
            for x in 0..4 {
                img.put_pixel(x, y, image::Luma([2]));
            }
        }
        let path = dir.join("m.png");
        img.save(&path).unwrap();
        // The model saw the left square (a centre crop would take the middle one), as 2x2 patches.
        let crop = Crop { x: 0.0, y: 0.0, width: 4.0, height: 4.0 };
        assert_eq!(coverage(&path, Some(2), (8, 4), &crop, 2).unwrap(), vec![1.0, 1.0, 0.0, 0.0]);
        // Any non-zero pixel: everything.
        assert_eq!(coverage(&path, None, (8, 4), &crop, 2).unwrap(), vec![1.0; 4]);
        // The middle square: half of each top patch.
        let mid = Crop { x: 2.0, y: 0.0, width: 4.0, height: 4.0 };
        assert_eq!(coverage(&path, Some(2), (8, 4), &mid, 2).unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
        // Padded past the image's edge: the padding covers nothing, and does not dilute.
        let pad = Crop { x: -4.0, y: 0.0, width: 8.0, height: 8.0 };
        assert_eq!(coverage(&path, Some(2), (8, 4), &pad, 2).unwrap(), vec![0.0, 0.5, 0.0, 0.0]);
        let e = coverage(&path, None, (9, 4), &crop, 2).unwrap_err().to_string();
        assert!(e.contains("is 8x4, the image 9x4"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
