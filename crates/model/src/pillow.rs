//! Pillow's image resampling (its `Resample.c`) for 8-bit RGB, reproduced value for value: HF's
//! Pillow-based image processors (CLIP's, SigLIP's) resize with it, so the model sees exactly the
//! pixels transformers gives it. What makes it Pillow's and not just "a bicubic":
//! - the filter is widened by the downscale factor (antialiasing) and its weights for each output
//!   pixel are normalised to sum 1 in f64, then rounded to 22-bit fixed point;
//! - one axis at a time, rounded to u8 in between: horizontal first, unless the height shrinks
//!   by more than twice what the width does (Pillow 13's rule);
//! - each sum starts at one half (rounding) and is clipped to 0..=255.
//!
//! Each output pixel's weights depend only on its own index, so a window of the resized image is
//! computed exactly as the whole image would be and then cropped: a 1 x 16384 strip resized to
//! 336 x 5.5M costs its 336 x 336 window, with the same values.

use std::ops::Range;

use image::RgbImage;

/// Fixed-point bits of the weights (Pillow: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Pillow's resampling filters by their `PIL.Image.Resampling` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// 2: the triangle filter.
    Bilinear,
    /// 3: Keys' cubic with a = -0.5.
    Bicubic,
}

impl Filter {
    /// The filter for `PIL.Image.Resampling` number `n` (preprocessor_config.json's `resample`).
    pub fn from_pil(n: u64) -> Option<Filter> {
        match n {
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    /// The kernel at `x`, with Pillow's expression order (it decides the last bit).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear if x < 1.0 => 1.0 - x,
            Filter::Bicubic if x < 1.0 => ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1.0,
            Filter::Bicubic if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5,
            _ => 0.0,
        }
    }
}

/// The weights of a set of output pixels along one axis: output `i` of `outputs` reads input
/// pixels `first[i] .. first[i] + weights[i].len()`.
struct Axis {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

impl Axis {
    /// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for an axis of `in_size` pixels
    /// resized to `out_size`, for the outputs in `outputs` only.
    fn new(in_size: usize, out_size: usize, outputs: Range<usize>, filter: Filter) -> Axis {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ss = 1.0 / filterscale;
        let (mut first, mut weights) = (Vec::with_capacity(outputs.len()), Vec::with_capacity(outputs.len()));
        for xx in outputs {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(xmin as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax).map(|x| filter.weight((x as f64 - center + 0.5) * ss)).collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|w| *w /= total);
            }
            let unit = (1u32 << PRECISION_BITS) as f64;
            weights.push(k.iter().map(|&w| if w < 0.0 { (-0.5 + w * unit) as i32 } else { (0.5 + w * unit) as i32 }).collect());
            first.push(xmin);
        }
        Axis { first, weights }
    }

    /// Input pixels any of these outputs read.
    fn span(&self) -> Range<usize> {
        let lo = self.first.iter().copied().min().unwrap_or(0);
        let hi = self.first.iter().zip(&self.weights).map(|(f, w)| f + w.len()).max().unwrap_or(lo);
        lo..hi
    }
}

/// A weighted sum's fixed-point value rounded and clipped to u8, as Pillow's `clip8` does (the
/// sums start at one half, `1 << (PRECISION_BITS - 1)`).
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// A rectangle of RGB pixels placed in a larger image's coordinates: pixel (x, y) of the image
/// is at `((y - y0) * w + x - x0) * 3`.
struct Plane<'a> {
    px: std::borrow::Cow<'a, [u8]>,
    x0: usize,
    y0: usize,
    w: usize,
}

impl Plane<'_> {
    /// Row `y` (image coordinates), columns `cols`, as RGB bytes.
    fn row(&self, y: usize, cols: Range<usize>) -> &[u8] {
        let start = ((y - self.y0) * self.w + cols.start - self.x0) * 3;
        &self.px[start..start + cols.len() * 3]
    }

    /// The horizontal pass: rows `rows` of the output columns `cols` (`axis` built for exactly
    /// those outputs; None where the width does not change). Each output pixel's three channels
    /// are summed in one walk over its taps, as Pillow does.
    fn horizontal(&self, rows: Range<usize>, cols: Range<usize>, axis: Option<&Axis>) -> Plane<'static> {
        let n = cols.len();
        let mut px = vec![0u8; rows.len() * n * 3];
        let src_cols = self.x0..self.x0 + self.w;
        for (r, y) in rows.clone().enumerate() {
            let dst = &mut px[r * n * 3..(r + 1) * n * 3];
            let Some(a) = axis else {
                dst.copy_from_slice(self.row(y, cols.clone()));
                continue;
            };
            let src = self.row(y, src_cols.clone());
            for (i, out) in dst.chunks_exact_mut(3).enumerate() {
                let first = (a.first[i] - self.x0) * 3;
                let mut acc = [HALF; 3];
                for (&w, p) in a.weights[i].iter().zip(src[first..].chunks_exact(3)) {
                    for c in 0..3 {
                        acc[c] += p[c] as i64 * w as i64;
                    }
                }
                out.copy_from_slice(&acc.map(clip8));
            }
        }
        Plane { px: px.into(), x0: cols.start, y0: rows.start, w: n }
    }

    /// The vertical pass: the output rows `rows` of columns `cols`. A whole output row is
    /// accumulated tap by tap, reading source rows front to back.
    fn vertical(&self, rows: Range<usize>, cols: Range<usize>, axis: Option<&Axis>) -> Plane<'static> {
        let n = cols.len() * 3;
        let mut px = vec![0u8; rows.len() * n];
        let mut acc = vec![0i64; n];
        for (i, y) in rows.clone().enumerate() {
            let dst = &mut px[i * n..(i + 1) * n];
            let Some(a) = axis else {
                dst.copy_from_slice(self.row(y, cols.clone()));
                continue;
            };
            acc.fill(HALF);
            for (k, &w) in a.weights[i].iter().enumerate() {
                for (s, &p) in acc.iter_mut().zip(self.row(a.first[i] + k, cols.clone())) {
                    *s += p as i64 * w as i64;
                }
            }
            for (d, &s) in dst.iter_mut().zip(&acc) {
                *d = clip8(s);
            }
        }
        Plane { px: px.into(), x0: cols.start, y0: rows.start, w: cols.len() }
    }
}

/// The window `x0 .. x0 + width`, `y0 .. y0 + height` of `img` resized to `w x h` by Pillow's
/// `Image.resize((w, h), filter)`: the same values as resizing the whole image and cropping.
/// Pillow 13 runs the vertical pass first when the height shrinks by more than twice what the
/// width does (earlier versions always ran the horizontal one first; the results differ by a
/// level in places, so the order is Pillow 13's, as the golden fixtures were made with it).
pub fn resize_window(img: &RgbImage, (w, h): (u32, u32), (x0, y0): (u32, u32), (width, height): (u32, u32), filter: Filter) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (w, h, x0, y0, width, height) = (w as usize, h as usize, x0 as usize, y0 as usize, width as usize, height as usize);
    let (out_cols, out_rows) = (x0..x0 + width, y0..y0 + height);
    let cols = (w != iw).then(|| Axis::new(iw, w, out_cols.clone(), filter));
    let rows = (h != ih).then(|| Axis::new(ih, h, out_rows.clone(), filter));
    let src = Plane { px: img.as_raw().as_slice().into(), x0: 0, y0: 0, w: iw };
    let horizontal_first = !(ih > h && (ih - h) as i64 > (iw as i64 - w as i64) * 2);
    let out = if horizontal_first {
        // Only the source rows the vertical pass will read.
        let mid = src.horizontal(rows.as_ref().map_or(out_rows.clone(), Axis::span), out_cols.clone(), cols.as_ref());
        mid.vertical(out_rows, out_cols, rows.as_ref())
    } else {
        let mid = src.vertical(out_rows.clone(), cols.as_ref().map_or(out_cols.clone(), Axis::span), rows.as_ref());
        mid.horizontal(out_rows, out_cols, cols.as_ref())
    };
    RgbImage::from_raw(width as u32, height as u32, out.px.into_owned()).unwrap_or_else(|| RgbImage::new(width as u32, height as u32))
}

/// Pillow's `Image.resize((w, h), filter)` of the whole image.
pub fn resize(img: &RgbImage, (w, h): (u32, u32), filter: Filter) -> RgbImage {
    resize_window(img, (w, h), (0, 0), (w, h), filter)
}

/// HF's `convert_to_rgb` on what Pillow decodes: an image with alpha composited onto opaque
/// white with Pillow's `alpha_composite` integer arithmetic, 16-bit samples cut to their high
/// byte (Pillow's "RGB;16B" unpacking), grey replicated. 16-bit grey is the one case left
/// different: Pillow clips it to 0..=255 (mode "I" to "L") where this keeps the high byte.
pub fn to_rgb(img: image::DynamicImage) -> RgbImage {
    use image::DynamicImage as D;
    let rgba: image::RgbaImage = match img {
        D::ImageRgb8(rgb) => return rgb,
        D::ImageLuma8(_) | D::ImageLuma16(_) | D::ImageRgb16(_) | D::ImageRgb32F(_) => return high_bytes(&img),
        D::ImageRgba16(_) | D::ImageLumaA16(_) => {
            let wide = img.to_rgba16();
            image::RgbaImage::from_fn(wide.width(), wide.height(), |x, y| image::Rgba(wide.get_pixel(x, y).0.map(|v| (v >> 8) as u8)))
        }
        other => other.to_rgba8(),
    };
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        image::Rgb([r, g, b].map(|c| over_white(c, a)))
    })
}

fn high_bytes(img: &image::DynamicImage) -> RgbImage {
    match img {
        image::DynamicImage::ImageLuma8(_) | image::DynamicImage::ImageRgb32F(_) => img.to_rgb8(),
        _ => {
            let wide = img.to_rgb16();
            RgbImage::from_fn(wide.width(), wide.height(), |x, y| image::Rgb(wide.get_pixel(x, y).0.map(|v| (v >> 8) as u8)))
        }
    }
}

/// One channel of Pillow's `alpha_composite(white, (c, alpha))` (AlphaComposite.c, 7 bits of
/// precision, divisions by 255 rounded with shifts).
fn over_white(c: u8, alpha: u8) -> u8 {
    if alpha == 0 {
        return 255;
    }
    let (c, a) = (c as u32, alpha as u32);
    // Over an opaque background the output alpha is 255 * 255, so coef1 = a * 128.
    let coef1 = a * 255 * 255 * 128 / (255 * 255);
    let coef2 = 255 * 128 - coef1;
    let t = c * coef1 + 255 * coef2 + (0x80 << 7);
    ((((t >> 8) + t) >> 8) >> 7) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_weights_are_pillows() {
        // Downscale 500 -> 336: the filter widens by 500/336, so 7 taps (support 2.98), and the
        // rounded weights of the first output pixel, clipped at the border.
        let a = Axis::new(500, 336, 0..2, Filter::Bicubic);
        assert_eq!(a.first, [0, 0]);
        assert_eq!(a.weights[0].len(), 4, "center 0.744, support 2.976: inputs 0..4");
        let sum: i64 = a.weights[1].iter().map(|&w| w as i64).sum();
        assert!((sum - (1 << 22)).abs() <= a.weights[1].len() as i64, "normalised to one: {sum}");
        // An identity axis is the identity (one weight of exactly 1.0 at the pixel itself).
        let id = Axis::new(10, 10, 3..4, Filter::Bicubic);
        assert_eq!((id.first[0], id.weights[0].iter().filter(|&&w| w != 0).count()), (2, 1));
        assert_eq!(id.weights[0][1], 1 << 22);
    }

    #[test]
    fn a_window_is_the_whole_resize_cropped() {
        let mut rng = llava_lens_tensor::Rng::new(11);
        for (iw, ih, w, h) in [(600, 400, 504, 336), (97, 89, 61, 56), (40, 31, 120, 93), (336, 1000, 336, 1000), (5, 300, 56, 3360)] {
            let img = RgbImage::from_fn(iw, ih, |_, _| image::Rgb([0, 1, 2].map(|_| (rng.next_f32() * 255.0) as u8)));
            let whole = resize(&img, (w, h), Filter::Bicubic);
            let (x0, y0, size) = ((w - w.min(h)) / 2, (h - w.min(h)) / 2, w.min(h));
            let window = resize_window(&img, (w, h), (x0, y0), (size, size), Filter::Bicubic);
            assert_eq!(window, image::imageops::crop_imm(&whole, x0, y0, size, size).to_image(), "{iw}x{ih} -> {w}x{h}");
        }
    }

    #[test]
    fn flat_images_stay_flat_and_extremes_clip() {
        // Weights sum to one in fixed point, so a flat image stays flat; the cubic's negative
        // lobes overshoot at a black/white edge and are clipped, not wrapped.
        let flat = RgbImage::from_pixel(37, 23, image::Rgb([200, 0, 255]));
        assert!(resize(&flat, (11, 50), Filter::Bicubic).pixels().all(|p| p.0 == [200, 0, 255]));
        let edge = RgbImage::from_fn(8, 1, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let up = resize(&edge, (32, 1), Filter::Bicubic);
        assert!(up.pixels().any(|p| p.0[0] == 0) && up.pixels().any(|p| p.0[0] == 255));
    }

    #[test]
    fn alpha_is_composited_on_white_as_pillow_does() {
        // Values from Pillow 13's alpha_composite(white, RGBA): transparent is white, opaque is
        // itself, and half-covered rounds as AlphaComposite.c does.
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(17, 255), 17);
        assert_eq!([over_white(0, 128), over_white(100, 128), over_white(200, 128), over_white(200, 1)], [127, 177, 227, 255]);
        let rgba = image::RgbaImage::from_pixel(2, 1, image::Rgba([0, 100, 200, 128]));
        assert_eq!(to_rgb(image::DynamicImage::ImageRgba8(rgba)).get_pixel(1, 0).0, [127, 177, 227]);
    }
}
