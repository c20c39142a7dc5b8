//! Drawing a patch map over the model's view of the image: crisp patch grid or bicubic
//! upsampling with a = -0.75 (OpenCV's INTER_CUBIC, as the authors draw it), viridis for
//! normalised maps and a diverging RdBu centred at zero for signed scores, the top patches
//! outlined, and a colour bar beside the image (its scale is in the JSON: `legend`).

use fast_image_resize::images::Image;
use fast_image_resize::{Filter, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{Rgb, RgbImage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsample {
    /// Each patch one flat square.
    Crisp,
    /// Bicubic, a = -0.75.
    Smooth,
}

#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    pub upsample: Upsample,
    /// Signed scores on a diverging map centred at 0 (else sequential from the minimum).
    pub signed: bool,
    /// Weight of the colour over the image, 0..=1.
    pub opacity: f32,
    /// Patches to outline, best first.
    pub outline_top: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { upsample: Upsample::Smooth, signed: false, opacity: 0.55, outline_top: 3 }
    }
}

/// The value range the colours span, for the legend.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Legend {
    pub min: f32,
    pub max: f32,
    pub colormap: &'static str,
}

/// OpenCV's cubic convolution kernel with a = -0.75.
fn cubic_075(x: f64) -> f64 {
    let a = -0.75;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

fn upsample(grid: &[f32], g: usize, size: u32, how: Upsample) -> Vec<f32> {
    let s = size as usize;
    match how {
        Upsample::Crisp => (0..s * s).map(|i| grid[(i / s * g / s) * g + (i % s) * g / s]).collect(),
        Upsample::Smooth => {
            let src = Image::from_vec_u8(g as u32, g as u32, bytemuck_f32(grid), PixelType::F32).expect("grid buffer");
            let mut dst = Image::new(size, size, PixelType::F32);
            let filter = Filter::new("cubic a=-0.75", cubic_075, 2.0).expect("valid filter");
            Resizer::new()
                .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Custom(filter))))
                .expect("same pixel types");
            dst.buffer().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
    }
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `scores` (row-major `g x g`) drawn over `view` (the model's square crop), with a colour bar
/// on the right.
pub fn render(view: &RgbImage, scores: &[f32], g: usize, opts: &RenderOptions) -> (RgbImage, Legend) {
    let size = view.width();
    let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let (min, max, gradient, name) = if opts.signed {
        let m = lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE);
        (-m, m, colorous::RED_BLUE, "RdBu (reversed: red positive)")
    } else {
        (lo, if hi > lo { hi } else { lo + 1.0 }, colorous::VIRIDIS, "viridis")
    };
    let colour = |v: f32| {
        let t = ((v - min) / (max - min)).clamp(0.0, 1.0) as f64;
        // RdBu runs red (0) to blue (1): flip so positive scores are red.
        let c = gradient.eval_continuous(if opts.signed { 1.0 - t } else { t });
        [c.r, c.g, c.b]
    };
    let heat = upsample(scores, g, size, opts.upsample);
    let bar = (size / 16).max(6);
    let mut out = RgbImage::from_pixel(size + bar + 4, size, Rgb([255, 255, 255]));
    for y in 0..size {
        for x in 0..size {
            let p = view.get_pixel(x, y).0;
            let c = colour(heat[(y * size + x) as usize]);
            let mix = |i: usize| ((1.0 - opts.opacity) * p[i] as f32 + opts.opacity * c[i] as f32).round() as u8;
            out.put_pixel(x, y, Rgb([mix(0), mix(1), mix(2)]));
        }
        let c = colour(max - (max - min) * y as f32 / (size - 1).max(1) as f32);
        for x in size + 4..size + 4 + bar {
            out.put_pixel(x, y, Rgb(c));
        }
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let cell = size as f32 / g as f32;
    for &p in order.iter().take(opts.outline_top) {
        let (x0, y0) = (((p % g) as f32 * cell) as u32, ((p / g) as f32 * cell) as u32);
        let (x1, y1) = ((((p % g) + 1) as f32 * cell) as u32 - 1, (((p / g) + 1) as f32 * cell) as u32 - 1);
        for x in x0..=x1 {
            out.put_pixel(x, y0, Rgb([255, 255, 255]));
            out.put_pixel(x, y1, Rgb([255, 255, 255]));
        }
        for y in y0..=y1 {
            out.put_pixel(x0, y, Rgb([255, 255, 255]));
            out.put_pixel(x1, y, Rgb([255, 255, 255]));
        }
    }
    (out, Legend { min, max, colormap: name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_kernel_interpolates_and_maps_have_the_right_size() {
        assert_eq!(cubic_075(0.0), 1.0);
        assert_eq!(cubic_075(1.0), 0.0);
        assert_eq!(cubic_075(2.0), 0.0);
        let view = RgbImage::from_pixel(56, 56, Rgb([128, 128, 128]));
        let scores: Vec<f32> = (0..16).map(|i| i as f32).collect();
        for how in [Upsample::Crisp, Upsample::Smooth] {
            let (img, legend) = render(&view, &scores, 4, &RenderOptions { upsample: how, ..Default::default() });
            assert_eq!((img.width(), img.height()), (56 + 6 + 4, 56));
            assert_eq!((legend.min, legend.max), (0.0, 15.0));
            // The best patch (15, bottom right) is outlined in white.
            assert_eq!(img.get_pixel(55, 55).0, [255, 255, 255]);
        }
        let (_, legend) = render(&view, &[-2.0, 1.0, 0.5, 0.0], 2, &RenderOptions { signed: true, ..Default::default() });
        assert_eq!((legend.min, legend.max), (-2.0, 2.0));
    }
}
