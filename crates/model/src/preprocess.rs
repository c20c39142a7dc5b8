//! HF `CLIPImageProcessor` as configured for llava-1.5 (METHOD.md sec. 1): RGB; resize so the
//! shortest edge is the model's image size (long edge `int(size * long / short)`) with Pillow's
//! antialiased bicubic (a convolution with the a = -0.5 cubic widened by the downscale factor,
//! as `fast_image_resize`'s Catmull-Rom convolution does); center crop (`top = (H - size) // 2`);
//! `x / 255`; normalise with CLIP's mean and std; CHW f32. Original LLaVA's pad-to-square mode
//! (`expand2square` with the mean colour) is available too. The crop box is kept, in original
//! image pixels, so maps can be drawn back onto the user's image.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::ModelError;

/// OpenAI CLIP's normalisation (`OPENAI_CLIP_MEAN`, `OPENAI_CLIP_STD`).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Images larger than this on a side are refused before decoding (a 16k x 16k RGB image is
/// 768 MB): a clear error instead of an out-of-memory tab.
pub const MAX_SIDE: u32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// HF llava-1.5: shortest edge to the model size, then center crop.
    CenterCrop,
    /// Original LLaVA: pad to a square with the mean colour, then resize.
    PadToSquare,
}

/// The region of the original image the model sees, in original pixels (may extend past the
/// image in pad-to-square mode).
#[derive(Debug, Clone, Copy, PartialEq)]
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

/// Decodes PNG, JPEG, WebP, BMP or GIF bytes to RGB; `what` names the source in errors.
pub fn decode_image(bytes: &[u8], what: &str) -> Result<RgbImage, ModelError> {
    let err = |detail: String| ModelError::Image { what: what.to_string(), detail };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()))?;
    if reader.format().is_none() {
        return Err(err("not a PNG, JPEG, WebP, BMP or GIF image".into()));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| err(format!("cannot decode: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image is empty".into()));
    }
    Ok(img.to_rgb8())
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load_image(path: &std::path::Path) -> Result<RgbImage, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    decode_image(&bytes, &path.display().to_string())
}

/// Pillow's bicubic resize of an RGB image to `w x h`. Pillow runs the horizontal pass first and
/// rounds to u8 in between; fast_image_resize runs u8 images vertical-first, which measured up to
/// 2 levels away from Pillow. One axis at a time reproduces Pillow's order (<= 1 level).
fn resize(img: &RgbImage, w: u32, h: u32) -> Result<RgbImage, ModelError> {
    let wide = if w != img.width() { resize_pass(img, w, img.height())? } else { img.clone() };
    if h != img.height() { resize_pass(&wide, w, h) } else { Ok(wide) }
}

/// One convolution pass (only one dimension changes).
fn resize_pass(img: &RgbImage, w: u32, h: u32) -> Result<RgbImage, ModelError> {
    let err = |e: String| ModelError::Image { what: "resize".into(), detail: e };
    let src = Image::from_vec_u8(img.width(), img.height(), img.as_raw().clone(), PixelType::U8x3).map_err(|e| err(e.to_string()))?;
    let mut dst = Image::new(w, h, PixelType::U8x3);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)))
        .map_err(|e| err(e.to_string()))?;
    RgbImage::from_raw(w, h, dst.into_vec()).ok_or_else(|| err("buffer size".into()))
}

/// `expand2square`: centre the image on a square of the CLIP mean colour.
fn pad_to_square(img: &RgbImage) -> (RgbImage, u32, u32) {
    let (w, h) = img.dimensions();
    let side = w.max(h);
    let fill = image::Rgb(CLIP_MEAN.map(|m| (m * 255.0) as u8));
    let mut square = RgbImage::from_pixel(side, side, fill);
    let (dx, dy) = ((side - w) / 2, (side - h) / 2);
    image::imageops::replace(&mut square, img, dx as i64, dy as i64);
    (square, dx, dy)
}

/// The model input for `img` at `size` x `size` (the vision tower's image_size).
pub fn preprocess(img: &RgbImage, size: usize, mode: ResizeMode) -> Result<Preprocessed, ModelError> {
    let original = img.dimensions();
    let (base, offset) = match mode {
        ResizeMode::CenterCrop => (img.clone(), (0, 0)),
        ResizeMode::PadToSquare => {
            let (sq, dx, dy) = pad_to_square(img);
            (sq, (dx, dy))
        }
    };
    let (w, h) = base.dimensions();
    let s = size as u32;
    // get_resize_output_image_size(default_to_square=False): short side to `size`.
    let (rw, rh) = if w <= h { (s, (s as u64 * h as u64 / w as u64) as u32) } else { ((s as u64 * w as u64 / h as u64) as u32, s) };
    let resized = if (rw, rh) == (w, h) { base } else { resize(&base, rw, rh)? };
    let (top, left) = ((rh - s) / 2, (rw - s) / 2);
    let mut pixels = vec![0f32; 3 * size * size];
    for y in 0..size {
        for x in 0..size {
            let p = resized.get_pixel(left + x as u32, top + y as u32);
            for c in 0..3 {
                // HF rescales to [0, 1] then normalises, in float32.
                pixels[(c * size + y) * size + x] = (p[c] as f32 * (1.0 / 255.0) - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
    }
    let (sx, sy) = (w as f32 / rw as f32, h as f32 / rh as f32);
    let crop = CropBox {
        x: left as f32 * sx - offset.0 as f32,
        y: top as f32 * sy - offset.1 as f32,
        width: s as f32 * sx,
        height: s as f32 * sy,
    };
    let crop_rgb = image::imageops::crop_imm(&resized, left, top, s, s).to_image();
    Ok(Preprocessed { pixels, size, crop, original, crop_rgb })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_maps_back_to_the_original() {
        let img = RgbImage::from_fn(600, 400, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
        let p = preprocess(&img, 336, ResizeMode::CenterCrop).unwrap();
        assert_eq!(p.pixels.len(), 3 * 336 * 336);
        // 600x400 -> 504x336, crop left (504 - 336) / 2 = 84 -> 100 original pixels.
        assert_eq!(p.crop, CropBox { x: 100.0, y: 0.0, width: 400.0, height: 400.0 });
        let q = preprocess(&img, 336, ResizeMode::PadToSquare).unwrap();
        assert_eq!(q.crop, CropBox { x: 0.0, y: -100.0, width: 600.0, height: 600.0 });
    }

    #[test]
    fn bad_images_are_clear_errors() {
        let err = decode_image(b"definitely not an image", "upload.png").unwrap_err().to_string();
        assert!(err.starts_with("upload.png: ") && err.contains("not a PNG"), "{err}");
        let mut png = Vec::new();
        RgbImage::new(4, 4).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let err = decode_image(&png[..png.len() / 2], "half.png").unwrap_err().to_string();
        assert!(err.starts_with("half.png: cannot decode"), "{err}");
        // A 20000 x 1 image is refused by its header, before any pixel buffer is allocated.
        let mut wide = Vec::new();
        RgbImage::new(20000, 1).write_to(&mut std::io::Cursor::new(&mut wide), image::ImageFormat::Png).unwrap();
        let err = decode_image(&wide, "wide.png").unwrap_err().to_string();
        assert!(err.starts_with("wide.png: cannot decode") && err.contains("limit"), "{err}");
    }
}
