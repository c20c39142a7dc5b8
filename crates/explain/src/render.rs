//! Drawing a patch map over the model's view of the image: crisp patch grid or bicubic
//! upsampling with a = -0.75 (OpenCV's INTER_CUBIC, as the authors draw it), viridis for
//! normalised maps and a diverging RdBu centred at zero for signed scores, the top patches
//! outlined, and a labelled colour bar beside the image (top and bottom values, units; the same
//! range is in the JSON's `legend`).

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Diverging RdBu centred at 0 for signed scores (red positive).
    Signed,
    /// Sequential viridis from the minimum.
    Viridis,
    /// The authors' notebook: a gray map (black low, white high), drawn at opacity 0.8.
    Gray,
}

#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    pub upsample: Upsample,
    pub palette: Palette,
    /// Weight of the colour over the image, 0..=1.
    pub opacity: f32,
    /// Patches to outline, best first.
    pub outline_top: usize,
    /// Written beside the colour bar ("nats", "share").
    pub units: &'static str,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { upsample: Upsample::Smooth, palette: Palette::Viridis, opacity: 0.55, outline_top: 3, units: "nats" }
    }
}

/// The value range the colours span, for the legend.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Legend {
    pub min: f32,
    pub max: f32,
    pub colormap: &'static str,
}

/// The value range and colour map `scores` are drawn with: what a legend drawn elsewhere (the
/// page's SVG colour bar) must say.
pub fn legend(scores: &[f32], palette: Palette) -> Legend {
    Colours::new(scores, palette).legend()
}

/// `n` colours evenly spaced from the bottom of `palette`'s range to its top (a colour bar's
/// gradient stops).
pub fn ramp(palette: Palette, n: usize) -> Vec<[u8; 3]> {
    let c = Colours { min: 0.0, max: 1.0, palette };
    (0..n).map(|i| c.of(i as f32 / (n.max(2) - 1) as f32)).collect()
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

/// A map that cannot be drawn: the inputs disagree (they come from files and share links, so
/// this is an error, never a panic).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the map: {0}")]
pub struct RenderError(String);

/// The largest image side a map is drawn at (the model's view is at most 2048 pixels).
pub const MAX_DRAW_SIDE: u32 = 4096;

/// `scores` must be `g x g` finite values, to be drawn `side` pixels wide (at least a pixel a
/// patch).
fn check_map(scores: &[f32], g: usize, side: u32) -> Result<(), RenderError> {
    let bad = |m: String| Err(RenderError(m));
    if g == 0 || g.checked_mul(g) != Some(scores.len()) {
        return bad(format!("{} scores do not make a {g} x {g} grid", scores.len()));
    }
    if let Some(i) = scores.iter().position(|v| !v.is_finite()) {
        return bad(format!("score {i} is {}", scores[i]));
    }
    if (side as usize) < g || side > MAX_DRAW_SIDE {
        return bad(format!("a {g} x {g} grid cannot be drawn {side} pixels wide (1 pixel a patch at least, {MAX_DRAW_SIDE} at most)"));
    }
    Ok(())
}

fn upsample(grid: &[f32], g: usize, size: u32, how: Upsample) -> Result<Vec<f32>, RenderError> {
    let s = size as usize;
    let err = |e: String| RenderError(format!("upsampling: {e}"));
    Ok(match how {
        Upsample::Crisp => (0..s * s).map(|i| grid[(i / s * g / s) * g + (i % s) * g / s]).collect(),
        Upsample::Smooth => {
            let src = Image::from_vec_u8(g as u32, g as u32, bytemuck_f32(grid), PixelType::F32).map_err(|e| err(e.to_string()))?;
            let mut dst = Image::new(size, size, PixelType::F32);
            let filter = Filter::new("cubic a=-0.75", cubic_075, 2.0).map_err(|e| err(e.to_string()))?;
            Resizer::new()
                .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Custom(filter))))
                .map_err(|e| err(e.to_string()))?;
            dst.buffer().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
    })
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Value range and colour of a map.
struct Colours {
    min: f32,
    max: f32,
    palette: Palette,
}

impl Colours {
    fn new(scores: &[f32], palette: Palette) -> Self {
        let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        match palette {
            Palette::Signed => {
                let m = lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE);
                Colours { min: -m, max: m, palette }
            }
            _ => Colours { min: lo, max: if hi > lo { hi } else { lo + 1.0 }, palette },
        }
    }

    fn of(&self, v: f32) -> [u8; 3] {
        let t = ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0) as f64;
        match self.palette {
            // RdBu runs red (0) to blue (1): flip so positive scores are red.
            Palette::Signed => colorous::RED_BLUE.eval_continuous(1.0 - t).as_array(),
            Palette::Viridis => colorous::VIRIDIS.eval_continuous(t).as_array(),
            Palette::Gray => [(t * 255.0).round() as u8; 3],
        }
    }

    fn legend(&self) -> Legend {
        let colormap = match self.palette {
            Palette::Signed => "RdBu (reversed: red positive)",
            Palette::Viridis => "viridis",
            Palette::Gray => "gray",
        };
        Legend { min: self.min, max: self.max, colormap }
    }
}

fn blend(p: [u8; 3], c: [u8; 3], opacity: f32) -> Rgb<u8> {
    let mix = |i: usize| ((1.0 - opacity) * p[i] as f32 + opacity * c[i] as f32).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

/// `scores` (row-major `g x g`) drawn over `view` (the model's square crop), with a colour bar
/// on the right.
pub fn render(view: &RgbImage, scores: &[f32], g: usize, opts: &RenderOptions) -> Result<(RgbImage, Legend), RenderError> {
    let size = view.width();
    if view.height() != size {
        return Err(RenderError(format!("the image is {} x {}, not square", size, view.height())));
    }
    check_map(scores, g, size)?;
    let colours = Colours::new(scores, opts.palette);
    let heat = upsample(scores, g, size, opts.upsample)?;
    let bar = (size / 16).max(6);
    let labels = [format!("{:.3}", colours.max), opts.units.to_string(), format!("{:.3}", colours.min)];
    let text_w = 8 * labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let mut out = RgbImage::from_pixel(size + bar + 8 + text_w, size, Rgb([255, 255, 255]));
    for y in 0..size {
        for x in 0..size {
            out.put_pixel(x, y, blend(view.get_pixel(x, y).0, colours.of(heat[(y * size + x) as usize]), opts.opacity));
        }
        let c = colours.of(colours.max - (colours.max - colours.min) * y as f32 / (size - 1).max(1) as f32);
        for x in size + 4..size + 4 + bar {
            out.put_pixel(x, y, Rgb(c));
        }
    }
    let order = crate::method::rank_desc(scores);
    let cell = size as f32 / g as f32;
    for &p in order.iter().take(opts.outline_top) {
        // At least a pixel a patch (check_map), so each box is at least one pixel wide.
        let (x0, y0) = (((p % g) as f32 * cell) as u32, ((p / g) as f32 * cell) as u32);
        let edge = |i: usize| ((((i + 1) as f32 * cell) as u32).saturating_sub(1)).min(size - 1);
        let (x1, y1) = (edge(p % g).max(x0), edge(p / g).max(y0));
        for x in x0..=x1 {
            out.put_pixel(x, y0, Rgb([255, 255, 255]));
            out.put_pixel(x, y1, Rgb([255, 255, 255]));
        }
        for y in y0..=y1 {
            out.put_pixel(x0, y, Rgb([255, 255, 255]));
            out.put_pixel(x1, y, Rgb([255, 255, 255]));
        }
    }
    let text_x = size + 4 + bar + 4;
    draw_text(&mut out, text_x, 0, &labels[0]);
    draw_text(&mut out, text_x, size.saturating_sub(8) / 2, &labels[1]);
    draw_text(&mut out, text_x, size.saturating_sub(8), &labels[2]);
    Ok((out, colours.legend()))
}

/// Black 8 x 8 bitmap text (font8x8's basic Latin) with its top-left corner at (x, y).
fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str) {
    use font8x8::UnicodeFonts;
    for (i, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else { continue };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                let (px, py) = (x + 8 * i as u32 + col, y + row as u32);
                if bits & (1 << col) != 0 && px < img.width() && py < img.height() {
                    img.put_pixel(px, py, Rgb([0, 0, 0]));
                }
            }
        }
    }
}

/// The same map drawn back onto the user's original image through the crop box (in original
/// pixels, as `Preprocessed::crop`); pixels outside the box are left as they are.
pub fn render_on_original(
    original: &RgbImage,
    crop: (f32, f32, f32, f32),
    scores: &[f32],
    g: usize,
    opts: &RenderOptions,
) -> Result<RgbImage, RenderError> {
    let (cx, cy, cw, ch) = crop;
    if ![cx, cy, cw, ch].iter().all(|v| v.is_finite()) || cw <= 0.0 || ch <= 0.0 {
        return Err(RenderError(format!("the crop box {crop:?} is not a box")));
    }
    // The heat map is drawn at the crop's size, within the drawing limits.
    let side = (cw.max(ch).round() as u32).clamp(g as u32, MAX_DRAW_SIDE);
    check_map(scores, g, side)?;
    let heat = upsample(scores, g, side, opts.upsample)?;
    let colours = Colours::new(scores, opts.palette);
    let mut out = original.clone();
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (u, v) = ((x as f32 + 0.5 - cx) / cw, (y as f32 + 0.5 - cy) / ch);
        if (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v) {
            let (hx, hy) = ((u * side as f32) as usize, (v * side as f32) as usize);
            *px = blend(px.0, colours.of(heat[hy * side as usize + hx]), opts.opacity);
        }
    }
    Ok(out)
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
            let (img, legend) = render(&view, &scores, 4, &RenderOptions { upsample: how, ..Default::default() }).unwrap();
            // Image, gap, bar, gap, then labels of up to 6 characters ("15.000").
            assert_eq!((img.width(), img.height()), (56 + 6 + 8 + 6 * 8, 56));
            assert!((56 + 10..img.width()).any(|x| img.get_pixel(x, 3).0 == [0, 0, 0]), "the top label is drawn");
            assert_eq!((legend.min, legend.max), (0.0, 15.0));
            // The best patch (15, bottom right) is outlined in white.
            assert_eq!(img.get_pixel(55, 55).0, [255, 255, 255]);
        }
        let (_, legend) =
            render(&view, &[-2.0, 1.0, 0.5, 0.0], 2, &RenderOptions { palette: Palette::Signed, ..Default::default() }).unwrap();
        assert_eq!((legend.min, legend.max), (-2.0, 2.0));
        let (img, legend) =
            render(&view, &scores, 4, &RenderOptions { palette: Palette::Gray, opacity: 0.8, ..Default::default() }).unwrap();
        assert_eq!(legend.colormap, "gray");
        // Patch 0 (score 0) is black at 0.8 over gray 128: 0.2 * 128 = 25.6.
        assert_eq!(img.get_pixel(5, 5).0, [26, 26, 26]);
    }

    #[test]
    fn legends_and_ramps_match_the_drawn_colours() {
        let l = legend(&[-0.5, 2.0], Palette::Signed);
        assert_eq!((l.min, l.max), (-2.0, 2.0), "signed maps are symmetric around 0");
        let r = ramp(Palette::Signed, 3);
        let c = Colours::new(&[-0.5, 2.0], Palette::Signed);
        assert_eq!(r, vec![c.of(-2.0), c.of(0.0), c.of(2.0)]);
        assert_eq!(ramp(Palette::Gray, 2), vec![[0, 0, 0], [255, 255, 255]]);
    }

    #[test]
    fn the_map_lands_inside_the_crop_box_of_the_original() {
        let original = RgbImage::from_pixel(100, 60, Rgb([0, 0, 0]));
        // A 60 x 60 crop at x = 20: the left 20 and right 20 columns stay untouched.
        let out = render_on_original(&original, (20.0, 0.0, 60.0, 60.0), &[1.0, 1.0, 1.0, 1.0], 2, &RenderOptions::default()).unwrap();
        assert_eq!(out.get_pixel(10, 30).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(90, 30).0, [0, 0, 0]);
        assert_ne!(out.get_pixel(50, 30).0, [0, 0, 0]);
    }

    #[test]
    fn maps_that_do_not_fit_their_image_are_errors_not_panics() {
        let o = RenderOptions::default();
        let one = RgbImage::new(1, 1);
        let e = render(&one, &[0.0; 576], 24, &o).unwrap_err().to_string();
        assert!(e.contains("24 x 24 grid cannot be drawn 1 pixels wide"), "{e}");
        assert!(render(&RgbImage::new(30, 20), &[0.0; 4], 2, &o).unwrap_err().to_string().contains("not square"));
        assert!(render(&RgbImage::new(8, 8), &[0.0; 5], 2, &o).unwrap_err().to_string().contains("5 scores do not make a 2 x 2 grid"));
        assert!(render(&RgbImage::new(8, 8), &[0.0; 4], 0, &o).is_err());
        assert!(render(&RgbImage::new(8, 8), &[0.0, f32::NAN, 1.0, 2.0], 2, &o).unwrap_err().to_string().contains("score 1 is NaN"));
        // Exactly a pixel a patch still draws, outlines included.
        let (img, _) = render(&RgbImage::new(24, 24), &(0..576).map(|i| i as f32).collect::<Vec<_>>(), 24, &o).unwrap();
        assert_eq!(img.height(), 24);
        let orig = RgbImage::new(10, 10);
        assert!(render_on_original(&orig, (0.0, 0.0, 0.0, 10.0), &[0.0; 4], 2, &o).is_err());
        assert!(render_on_original(&orig, (f32::NAN, 0.0, 10.0, 10.0), &[0.0; 4], 2, &o).is_err());
        assert!(render_on_original(&orig, (0.0, 0.0, 1.0, 1.0), &[0.0; 576], 24, &o).is_ok(), "a tiny crop is drawn at the grid's size");
    }
}
