//! `llava-lens bench preprocess`: the CPU time of turning a photo into the vision tower's input
//! (Pillow-exact resize, crop, normalise) for CLIP-L/336's and SigLIP-384's processors, on a
//! generated photo-sized image. CPU work: its absolute time is this machine's, named in the
//! output.

use clap::Args;
use image::RgbImage;
use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, preprocess};
use llava_lens_tensor::Rng;
use serde_json::json;

#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// The image's width and height in pixels (a 12-megapixel phone photo by default).
    #[arg(long, default_value = "4000x3000")]
    pub size: String,
    /// Timed runs per processor (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').ok_or_else(|| anyhow::anyhow!("--size {s:?}: expected WIDTHxHEIGHT"))?;
    let (w, h): (u32, u32) = (w.trim().parse()?, h.trim().parse()?);
    anyhow::ensure!((1..=16384).contains(&w) && (1..=16384).contains(&h), "--size {s}: sides of 1 to 16384 pixels");
    Ok((w, h))
}

pub fn run(args: &PreprocessArgs) -> anyhow::Result<()> {
    let (w, h) = parse_size(&args.size)?;
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    // Smooth gradients with noise: every tap does real work, as in a photo.
    let mut rng = Rng::new(3);
    let noise: Vec<u8> = (0..64 * 64 * 3).map(|_| (rng.next_f32() * 40.0) as u8).collect();
    let img = RgbImage::from_fn(w, h, |x, y| {
        let n = ((y % 64) * 64 + x % 64) as usize * 3;
        image::Rgb([((x * 255 / w) as u8).saturating_add(noise[n]), ((y * 255 / h) as u8).saturating_add(noise[n + 1]), noise[n + 2]])
    });
    for (name, processor) in [("clip-336", ImageProcessor::clip(336)), ("siglip-384", ImageProcessor::siglip(384))] {
        let mut ms: Vec<f64> = (0..args.runs)
            .map(|_| {
                let t = std::time::Instant::now();
                let p = preprocess(&img, &processor, ResizeMode::CenterCrop);
                let elapsed = t.elapsed().as_secs_f64() * 1e3;
                p.map(|_| elapsed)
            })
            .collect::<Result<_, _>>()?;
        ms.sort_by(f64::total_cmp);
        crate::print_out(json!({
            "bench": "preprocess",
            "processor": name,
            "image": format!("{w}x{h}"),
            "runs": args.runs,
            "median_ms": ms[ms.len() / 2],
            "min_ms": ms[0],
            "cpu_threads_available": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "debug_build": cfg!(debug_assertions),
        }))?;
    }
    Ok(())
}
