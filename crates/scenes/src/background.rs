//! Textured, noisy backgrounds in muted tones: far from every palette colour in saturation or
//! brightness, varied enough that "the colour at this pixel" is never the background's job.

use llava_lens_tensor::Rng;

/// Fill `rgb` (row-major, 3 bytes per pixel) with one of four textures over a muted base tone.
pub fn paint(rgb: &mut [u8], size: usize, rng: &mut Rng) {
    let level = 85.0 + 85.0 * rng.next_f32();
    let tint: [f32; 3] = std::array::from_fn(|_| 18.0 * (rng.next_f32() - 0.5));
    let base = tint.map(|t| level + t);
    let contrast = 6.0 + 14.0 * rng.next_f32();
    let kind = rng.below(4);
    let period = 8.0 + 24.0 * rng.next_f32();
    let angle = std::f32::consts::PI * rng.next_f32();
    let (dx, dy) = (angle.cos(), angle.sin());
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = (x as f32, y as f32);
            let t = match kind {
                // Stripes at a random angle and period.
                0 => ((fx * dx + fy * dy) * std::f32::consts::TAU / period).sin(),
                // Checkerboard.
                1 => {
                    let c = ((fx / period).floor() + (fy / period).floor()) as i64;
                    if c.rem_euclid(2) == 0 { 1.0 } else { -1.0 }
                }
                // Linear gradient across the image.
                2 => 2.0 * (fx * dx + fy * dy) / (size as f32 * std::f32::consts::SQRT_2),
                // Plain: noise only.
                _ => 0.0,
            };
            let i = 3 * (y * size + x);
            for c in 0..3 {
                rgb[i + c] = (base[c] + contrast * t).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Per-pixel uniform noise of amplitude `amp` over the whole image (sensor noise: objects too).
pub fn add_noise(rgb: &mut [u8], amp: f32, rng: &mut Rng) {
    for v in rgb.iter_mut() {
        let n = amp * (2.0 * rng.next_f32() - 1.0);
        *v = (*v as f32 + n).round().clamp(0.0, 255.0) as u8;
    }
}
