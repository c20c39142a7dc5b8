//! From a picture to the vision tower's input, as HF's Pillow-based image processors do it
//! (docs/METHOD.md sec. 1): decode, `convert_to_rgb` (alpha over white), resize with Pillow's
//! resampling (crates/model/src/pillow.rs, value for value), center crop where the processor
//! crops (`top = (H - h) // 2`), rescale and normalise with numpy's rounding (crates/model/src/processor.rs),
//! CHW f32. Original LLaVA's pad-to-square mode (`expand2square` with the mean colour) is
//! available too. The crop box is kept, in original image pixels, so maps can be drawn back onto
//! the user's image.

use image::RgbImage;

use crate::ModelError;

use crate::pillow;
pub use crate::processor::{CLIP_MEAN, CLIP_STD, ImageProcessor, Resize};

/// Images larger than this on a side are refused before decoding: a clear error instead of an
/// out-of-memory tab.
pub const MAX_SIDE: u32 = 16384;

/// Images with more pixels than this are refused before decoding (a 48-megapixel phone photo
/// passes; a 16384 x 16384 image, 268 megapixels and 805 MB as RGB, does not).
pub const MAX_PIXELS: u64 = 50_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// HF llava-1.5: shortest edge to the model size, then center crop.
    CenterCrop,
    /// Original LLaVA: pad to a square with the mean colour, then resize.
    PadToSquare,
}

/// The region of the original image the model sees, in original pixels (may extend past the
/// image in pad-to-square mode).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CropBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// `[3, size, size]`, normalised.
    pub pixels: Vec<f32>,
    pub size: usize,
    pub crop: CropBox,
    /// Size of the image given, (width, height).
    pub original: (u32, u32),
    /// The model's view as RGB (after resize and crop): what maps are drawn over.
    pub crop_rgb: RgbImage,
}

impl Preprocessed {
    /// The part of the model's view its patch grid covers, `covered` pixels a side from the
    /// top-left (`VisionConfig::covered_pixels`), with that part's box in the original image:
    /// where a map is drawn. A tower whose input is not a whole number of patches ignores the
    /// rest (SigLIP so400m: 378 of 384 pixels), so a map stretched over the whole view would be
    /// off by up to a patch's remainder; for CLIP-L/336 this is the whole view.
    pub fn patch_region(&self, covered: usize) -> (RgbImage, CropBox) {
        if covered >= self.size {
            return (self.crop_rgb.clone(), self.crop);
        }
        let f = covered as f32 / self.size as f32;
        let view = image::imageops::crop_imm(&self.crop_rgb, 0, 0, covered as u32, covered as u32).to_image();
        (view, CropBox { width: self.crop.width * f, height: self.crop.height * f, ..self.crop })
    }
}

/// Decodes PNG, JPEG, WebP, BMP or GIF bytes to RGB; `what` names the source in errors.
pub fn decode_image(bytes: &[u8], what: &str) -> Result<RgbImage, ModelError> {
    let err = |detail: String| ModelError::Image { what: what.to_string(), detail };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()))?;
    if reader.format().is_none() {
        return Err(err("not a PNG, JPEG, WebP, BMP or GIF image".into()));
    }
    let format = reader.format();
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    // The header's size first: a small file can declare an enormous image.
    let (w, h) = image::ImageReader::with_format(std::io::Cursor::new(bytes), format.unwrap_or(image::ImageFormat::Png))
        .into_dimensions()
        .map_err(|e| err(format!("cannot decode: {e}")))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(err(format!(
            "the image is {w} x {h} ({:.0} megapixels); at most {} megapixels are accepted: scale it down first",
            (w as u64 * h as u64) as f64 / 1e6,
            MAX_PIXELS / 1_000_000
        )));
    }
    if format == Some(image::ImageFormat::Jpeg) && jpeg_is_truncated(bytes) {
        // The decoder fills a cut JPEG's missing part with grey and says nothing.
        return Err(err("the JPEG ends early (no end-of-image marker after its last scan): the file is truncated".into()));
    }
    let img = reader.decode().map_err(|e| err(format!("cannot decode: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image is empty".into()));
    }
    Ok(pillow::to_rgb(img))
}

/// Whether a JPEG stops before its end-of-image marker (EOI, FF D9). The marker segments are
/// walked from the start (lengths skipped, so thumbnails inside APP segments are not seen;
/// entropy-coded data skipped up to the next marker, FF followed by neither 00 nor a restart
/// code), so data appended after the image (a phone's motion-photo video, a second MPO image)
/// is never taken for part of it. A structure this walk cannot follow is left to the decoder.
fn jpeg_is_truncated(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        if b.get(i) != Some(&0xFF) {
            return i >= b.len();
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = b.get(i) else { return true };
        i += 1;
        match marker {
            0xD9 => return false,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let Some(len) = b.get(i..i + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return true };
                if len < 2 {
                    return false;
                }
                i += len;
                if i > b.len() {
                    return true;
                }
                if marker == 0xDA {
                    loop {
                        match (b.get(i), b.get(i + 1)) {
                            (Some(0xFF), Some(&next)) if next != 0x00 && !(0xD0..=0xD7).contains(&next) => break,
                            (Some(_), Some(_)) => i += 1,
                            _ => return true,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load_image(path: &std::path::Path) -> Result<RgbImage, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    decode_image(&bytes, &path.display().to_string())
}

/// `expand2square`: centre the image on a square of the processor's mean colour
/// (`int(255 * mean)`, LLaVA's llava/mm_utils.py).
fn pad_to_square(img: &RgbImage, mean: [f32; 3]) -> (RgbImage, u32, u32) {
    let (w, h) = img.dimensions();
    let side = w.max(h);
    let fill = image::Rgb(mean.map(|m| (m as f64 * 255.0) as u8));
    let mut square = RgbImage::from_pixel(side, side, fill);
    let (dx, dy) = ((side - w) / 2, (side - h) / 2);
    image::imageops::replace(&mut square, img, dx as i64, dy as i64);
    (square, dx, dy)
}

/// The model input for `img` by `processor` (a square of its output size).
pub fn preprocess(img: &RgbImage, processor: &ImageProcessor, mode: ResizeMode) -> Result<Preprocessed, ModelError> {
    let original = img.dimensions();
    if original.0 == 0 || original.1 == 0 {
        return Err(ModelError::Image { what: "preprocess".into(), detail: "the image is empty".into() });
    }
    let side = original.0.max(original.1) as u64;
    if mode == ResizeMode::PadToSquare && side * side > MAX_PIXELS {
        return Err(ModelError::Image {
            what: "pad to square".into(),
            detail: format!(
                "a {} x {} image padded to a square is {:.0} megapixels; at most {} are accepted: crop or scale it first",
                original.0,
                original.1,
                (side * side) as f64 / 1e6,
                MAX_PIXELS / 1_000_000
            ),
        });
    }
    let padded;
    let (base, offset) = match mode {
        ResizeMode::CenterCrop => (img, (0, 0)),
        ResizeMode::PadToSquare => {
            let (sq, dx, dy) = pad_to_square(img, processor.mean);
            padded = sq;
            (&padded, (dx, dy))
        }
    };
    let (w, h) = base.dimensions();
    let (rw, rh) = match processor.resize {
        // get_resize_output_image_size(default_to_square=False): the short side to `s`. The long
        // side fits u32: it is at most s * MAX_SIDE.
        Resize::ShortestEdge(s) => {
            let long = |a: u32, b: u32| u32::try_from(s as u64 * a as u64 / b as u64).unwrap_or(u32::MAX);
            if w <= h { (s, long(h, w)) } else { (long(w, h), s) }
        }
        Resize::Exact { width, height } => (width, height),
    };
    let (cw, ch) = processor.crop.unwrap_or((rw, rh));
    let (left, top) = (rw.saturating_sub(cw) / 2, rh.saturating_sub(ch) / 2);
    let view = pillow::resize_window(base, (rw, rh), (left, top), (cw.min(rw), ch.min(rh)), processor.filter);
    let (vw, vh) = (view.width() as usize, view.height() as usize);
    if vw != vh {
        return Err(ModelError::Image {
            what: "preprocess".into(),
            detail: format!("the processor made a {vw} x {vh} image, not a square"),
        });
    }
    let mut pixels = vec![0f32; 3 * vw * vh];
    for (i, p) in view.pixels().enumerate() {
        for c in 0..3 {
            pixels[c * vw * vh + i] = processor.normalise(p[c], c);
        }
    }
    let (sx, sy) = (w as f32 / rw as f32, h as f32 / rh as f32);
    let crop = CropBox {
        x: left as f32 * sx - offset.0 as f32,
        y: top as f32 * sy - offset.1 as f32,
        width: vw as f32 * sx,
        height: vh as f32 * sy,
    };
    Ok(Preprocessed { pixels, size: vw, crop, original, crop_rgb: view })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_maps_back_to_the_original() {
        let img = RgbImage::from_fn(600, 400, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
        let p = preprocess(&img, &ImageProcessor::clip(336), ResizeMode::CenterCrop).unwrap();
        assert_eq!(p.pixels.len(), 3 * 336 * 336);
        // 600x400 -> 504x336, crop left (504 - 336) / 2 = 84 -> 100 original pixels.
        assert_eq!(p.crop, CropBox { x: 100.0, y: 0.0, width: 400.0, height: 400.0 });
        let q = preprocess(&img, &ImageProcessor::clip(336), ResizeMode::PadToSquare).unwrap();
        assert_eq!(q.crop, CropBox { x: 0.0, y: -100.0, width: 600.0, height: 600.0 });
    }

    #[test]
    fn maps_cover_only_the_pixels_the_patch_grid_sees() {
        // 600 x 400 at 64 px: the view is the crop box (100, 0, 400, 400); a 5 x 5 grid of
        // 12 px patches covers 60 of the 64 pixels, so the map's box is 375 original pixels a
        // side from the same corner, and its view the top-left 60 x 60.
        let img = RgbImage::from_fn(600, 400, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
        let p = preprocess(&img, &ImageProcessor::clip(64), ResizeMode::CenterCrop).unwrap();
        let (view, b) = p.patch_region(60);
        assert_eq!((view.width(), view.height()), (60, 60));
        assert_eq!(view.get_pixel(59, 59), p.crop_rgb.get_pixel(59, 59));
        assert_eq!(b, CropBox { x: 100.0, y: 0.0, width: 375.0, height: 375.0 });
        assert_eq!(p.patch_region(64), (p.crop_rgb.clone(), p.crop), "a whole number of patches: the whole view");
    }

    #[test]
    fn a_long_strip_costs_one_window_not_the_whole_resize() {
        // 1 x 16384: a full resize to the short side would be 336 x 5,505,024 (5.5 GB of RGB).
        let strip = RgbImage::from_fn(1, 16384, |_, y| image::Rgb([(y % 256) as u8, 0, 255]));
        let p = preprocess(&strip, &ImageProcessor::clip(336), ResizeMode::CenterCrop).unwrap();
        assert_eq!((p.crop_rgb.width(), p.crop_rgb.height(), p.pixels.len()), (336, 336, 3 * 336 * 336));
        assert_eq!(p.crop.width, 1.0);
    }

    #[test]
    fn bad_images_are_clear_errors() {
        let err = decode_image(b"definitely not an image", "upload.png").unwrap_err().to_string();
        assert!(err.starts_with("upload.png: ") && err.contains("not a PNG"), "{err}");
        let mut png = Vec::new();
        RgbImage::new(4, 4).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let err = decode_image(&png[..png.len() / 2], "half.png").unwrap_err().to_string();
        assert!(err.starts_with("half.png: cannot decode"), "{err}");
        // A cut JPEG is refused, not decoded with its missing half grey; data appended after a
        // whole one (a motion photo's video) is not mistaken for a cut.
        let mut jpeg = Vec::new();
        RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]))
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        assert!(decode_image(&jpeg, "whole.jpg").is_ok());
        let scan = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        for cut in [jpeg.len() - 2, (scan + jpeg.len()) / 2, scan + 20] {
            let err = decode_image(&jpeg[..cut], "cut.jpg").unwrap_err().to_string();
            assert!(err.starts_with("cut.jpg: ") && err.contains("truncated"), "cut at {cut}: {err}");
        }
        // Cut inside its headers: the decoder itself refuses it.
        assert!(decode_image(&jpeg[..scan / 2], "cut.jpg").unwrap_err().to_string().starts_with("cut.jpg: cannot decode"));
        let mut appended = jpeg.clone();
        appended.extend_from_slice(&[0x00, 0xFF, 0xDA, 0x12, 0x34, 0xFF, 0xD8, 0xFF, 0xDA, 7, 7]);
        assert!(decode_image(&appended, "motion.jpg").is_ok());
        // More pixels than MAX_PIXELS, by the header alone (8000 x 8000 in a third of a megabyte).
        let mut big = Vec::new();
        image::GrayImage::new(8000, 8000).write_to(&mut std::io::Cursor::new(&mut big), image::ImageFormat::Png).unwrap();
        assert!(big.len() < 1_000_000, "{}", big.len());
        let err = decode_image(&big, "big.png").unwrap_err().to_string();
        assert!(err.contains("8000 x 8000 (64 megapixels); at most 50 megapixels"), "{err}");
        let strip = RgbImage::new(8000, 1);
        let err = preprocess(&strip, &ImageProcessor::clip(56), ResizeMode::PadToSquare).unwrap_err().to_string();
        assert!(err.contains("padded to a square is 64 megapixels"), "{err}");
        // A 20000 x 1 image is refused by its header, before any pixel buffer is allocated.
        let mut wide = Vec::new();
        RgbImage::new(20000, 1).write_to(&mut std::io::Cursor::new(&mut wide), image::ImageFormat::Png).unwrap();
        let err = decode_image(&wide, "wide.png").unwrap_err().to_string();
        assert!(err.starts_with("wide.png: cannot decode") && err.contains("limit"), "{err}");
    }
}
