//! A checkpoint's image processor (`preprocessor_config.json`): how HF turns a picture into the
//! vision tower's input. Real checkpoints ship the file; without it the processor follows from
//! the vision tower (CLIP's for `clip_vision_model`, SigLIP's for `siglip_vision_model`), as the
//! llava-hf checkpoints configure them. Only the options Llava processors use are accepted; any
//! other value is an error naming the key.

use std::path::Path;

use serde_json::Value;

use crate::ModelError;
use crate::pillow::Filter;

/// OpenAI CLIP's normalisation (`OPENAI_CLIP_MEAN`, `OPENAI_CLIP_STD`).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// SigLIP's (`IMAGENET_STANDARD_MEAN`, `IMAGENET_STANDARD_STD`).
pub const SIGLIP_MEAN: [f32; 3] = [0.5; 3];
pub const SIGLIP_STD: [f32; 3] = [0.5; 3];

/// How the first step sizes the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// CLIP: the shorter side to this many pixels, the longer `int(n * long / short)`.
    ShortestEdge(u32),
    /// SigLIP: exactly this width and height, aspect ratio not kept.
    Exact { width: u32, height: u32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    pub resize: Resize,
    pub filter: Filter,
    /// Center crop to (width, height) after the resize.
    pub crop: Option<(u32, u32)>,
    /// Multiplies u8 values (HF's `rescale_factor`, 1/255), in f64 as numpy does.
    pub rescale: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl ImageProcessor {
    /// llava-1.5's `CLIPImageProcessor` at `size`.
    pub fn clip(size: u32) -> Self {
        ImageProcessor {
            resize: Resize::ShortestEdge(size),
            filter: Filter::Bicubic,
            crop: Some((size, size)),
            rescale: 1.0 / 255.0,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// llava-interleave's `SiglipImageProcessor` at `size`.
    pub fn siglip(size: u32) -> Self {
        ImageProcessor {
            resize: Resize::Exact { width: size, height: size },
            filter: Filter::Bicubic,
            crop: None,
            rescale: 1.0 / 255.0,
            mean: SIGLIP_MEAN,
            std: SIGLIP_STD,
        }
    }

    /// The processor a checkpoint without preprocessor_config.json gets: its vision tower's
    /// (an error for a checkpoint without one).
    pub fn default_for(config: &crate::LlavaConfig) -> Result<Self, ModelError> {
        Ok(ImageProcessor::clip(config.vision_tower()?.image_size as u32))
    }

    /// The side of the square this processor makes (checked to be square when parsed).
    pub fn output_size(&self) -> u32 {
        match (self.crop, self.resize) {
            (Some((w, _)), _) => w,
            (None, Resize::Exact { width, .. }) => width,
            (None, Resize::ShortestEdge(n)) => n,
        }
    }

    /// The processor of the checkpoint folder `dir`: its preprocessor_config.json, or without
    /// one [`ImageProcessor::default_for`] the config. It must make the square the vision tower
    /// takes.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(dir: &Path, config: &crate::LlavaConfig) -> Result<Self, ModelError> {
        let path = dir.join("preprocessor_config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path, config.vision_tower()?.image_size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default_for(config),
            Err(e) => Err(ModelError::io(&path, e)),
        }
    }

    /// Parses preprocessor_config.json text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path, image_size: usize) -> Result<Self, ModelError> {
        let bad = |d: String| ModelError::config(path, d);
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let flag = |k: &str, default: bool| -> Result<bool, ModelError> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(o) => Err(bad(format!("{k} is {o}; expected true or false"))),
            }
        };
        for (k, default) in [("do_resize", true), ("do_rescale", true), ("do_normalize", true)] {
            if !flag(k, default)? {
                return Err(bad(format!(
                    "{k} is false; llava-lens needs the resize, rescale and normalise steps every Llava processor has"
                )));
            }
        }
        if flag("do_pad", false)? || flag("do_reduce_labels", false)? {
            return Err(bad("do_pad is true; padding processors (LLaVA-NeXT's) are not supported".into()));
        }
        let size = |k: &str| -> Result<Option<Resize>, ModelError> {
            let Some(s) = v.get(k).filter(|s| !s.is_null()) else { return Ok(None) };
            let side = |n: &str| s.get(n).and_then(Value::as_u64).filter(|&x| (1..=4096).contains(&x)).map(|x| x as u32);
            match (side("shortest_edge"), side("height"), side("width")) {
                (Some(n), None, None) if s.get("longest_edge").is_none() => Ok(Some(Resize::ShortestEdge(n))),
                (None, Some(height), Some(width)) => Ok(Some(Resize::Exact { width, height })),
                _ => Err(bad(format!(
                    "{k} is {s}; expected {{\"shortest_edge\": N}} or {{\"height\": H, \"width\": W}} with sides of 1 to 4096"
                ))),
            }
        };
        let resize = size("size")?.ok_or_else(|| bad("size is missing".into()))?;
        let crop = if flag("do_center_crop", false)? {
            match size("crop_size")? {
                Some(Resize::Exact { width, height }) => Some((width, height)),
                _ => return Err(bad("do_center_crop is true but crop_size is not {\"height\": H, \"width\": W}".into())),
            }
        } else {
            None
        };
        let filter = match v.get("resample") {
            None | Some(Value::Null) => Filter::Bicubic,
            Some(r) => r
                .as_u64()
                .and_then(Filter::from_pil)
                .ok_or_else(|| bad(format!("resample is {r}; supported: 2 (bilinear) and 3 (bicubic), Pillow's numbering")))?,
        };
        let rescale = match v.get("rescale_factor") {
            None | Some(Value::Null) => 1.0 / 255.0,
            Some(r) => r
                .as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| bad(format!("rescale_factor is {r}; expected a positive number")))?,
        };
        let triple = |k: &str, default: [f32; 3]| -> Result<[f32; 3], ModelError> {
            let Some(x) = v.get(k).filter(|x| !x.is_null()) else { return Ok(default) };
            if let Some(n) = x.as_f64() {
                return Ok([n as f32; 3]);
            }
            let a: Option<Vec<f32>> = x.as_array().map(|a| a.iter().map(|n| n.as_f64().map(|n| n as f32)).collect()).and_then(|o| o);
            a.and_then(|a| <[f32; 3]>::try_from(a).ok()).ok_or_else(|| bad(format!("{k} is {x}; expected three numbers (R, G, B)")))
        };
        let (mean, std) = (triple("image_mean", CLIP_MEAN)?, triple("image_std", CLIP_STD)?);
        if !mean.iter().chain(&std).all(|x| x.is_finite()) || std.iter().any(|s| *s <= 0.0) {
            return Err(bad(format!("image_mean {mean:?} / image_std {std:?}: expected finite numbers and positive deviations")));
        }
        let p = ImageProcessor { resize, filter, crop, rescale, mean, std };
        p.check_output(path, image_size)?;
        Ok(p)
    }

    /// An error unless this processor makes the `image_size` square the vision tower takes.
    pub fn check_output(&self, path: &Path, image_size: usize) -> Result<(), ModelError> {
        let (w, h) = match (self.crop, self.resize) {
            (Some(c), _) => c,
            (None, Resize::Exact { width, height }) => (width, height),
            // The long side depends on the image: only a crop makes it square.
            (None, Resize::ShortestEdge(_)) => {
                return Err(ModelError::config(path, "size has shortest_edge but do_center_crop is false: the output would not be square"));
            }
        };
        if (w as usize, h as usize) != (image_size, image_size) {
            return Err(ModelError::config(
                path,
                format!(
                    "the processor makes {w} x {h} images but the vision tower takes {image_size} x {image_size} (config.json's vision_config.image_size)"
                ),
            ));
        }
        if let (Resize::ShortestEdge(n), Some((cw, ch))) = (self.resize, self.crop)
            && (cw > n || ch > n)
        {
            return Err(ModelError::config(path, format!("crop_size {cw} x {ch} is larger than the resized image's short side {n}")));
        }
        Ok(())
    }

    /// The normalised value of channel `c`'s u8 sample, as numpy computes it: the rescale in
    /// f64 then cast to f32, the mean and std in f32.
    pub fn normalise(&self, sample: u8, c: usize) -> f32 {
        ((sample as f64 * self.rescale) as f32 - self.mean[c]) / self.std[c]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, size: usize) -> Result<ImageProcessor, ModelError> {
        ImageProcessor::parse(s, Path::new("preprocessor_config.json"), size)
    }

    /// llava-hf/llava-1.5-7b-hf's preprocessor_config.json as published.
    const LLAVA_1_5: &str = r#"{"crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_convert_rgb": true,
        "do_normalize": true, "do_rescale": true, "do_resize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
        "processor_class": "LlavaProcessor", "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}}"#;

    /// llava-hf/llava-interleave-qwen-0.5b-hf's, as published.
    const INTERLEAVE: &str = r#"{"do_convert_rgb": null, "do_normalize": true, "do_rescale": true, "do_resize": true,
        "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
        "processor_class": "LlavaProcessor", "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 384}}"#;

    #[test]
    fn the_published_processors_parse_to_the_built_in_ones() {
        assert_eq!(parse(LLAVA_1_5, 336).unwrap(), ImageProcessor::clip(336));
        assert_eq!(parse(INTERLEAVE, 384).unwrap(), ImageProcessor::siglip(384));
        assert_eq!(ImageProcessor::siglip(384).output_size(), 384);
    }

    #[test]
    fn unsupported_or_inconsistent_processors_name_the_key() {
        let cases = [
            (LLAVA_1_5.replace(r#""resample": 3"#, r#""resample": 1"#), 336, "resample is 1; supported: 2 (bilinear) and 3 (bicubic)"),
            (LLAVA_1_5.to_string(), 224, "makes 336 x 336 images but the vision tower takes 224 x 224"),
            (LLAVA_1_5.replace(r#""do_center_crop": true"#, r#""do_center_crop": false"#), 336, "would not be square"),
            (LLAVA_1_5.replace(r#""do_normalize": true"#, r#""do_normalize": false"#), 336, "do_normalize is false"),
            (
                LLAVA_1_5.replace(r#""shortest_edge": 336"#, r#""shortest_edge": 300"#),
                336,
                "larger than the resized image's short side 300",
            ),
            (
                LLAVA_1_5.replace(r#""image_std": [0.26862954, 0.26130258, 0.27577711]"#, r#""image_std": [1, 0, 1]"#),
                336,
                "positive deviations",
            ),
            (
                LLAVA_1_5.replace(r#""image_mean": [0.48145466, 0.4578275, 0.40821073]"#, r#""image_mean": [1, 2]"#),
                336,
                "image_mean is [1,2]",
            ),
            (INTERLEAVE.replace(r#""width": 384"#, r#""width": 0"#), 384, "size is {\"height\":384,\"width\":0}"),
            ("[".to_string(), 336, "not valid JSON"),
        ];
        for (text, size, want) in cases {
            let err = parse(&text, size).unwrap_err().to_string();
            assert!(err.starts_with("preprocessor_config.json: ") && err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn normalise_rounds_as_numpy_does() {
        // numpy rescales in f64 and casts to f32; the f32 product differs in the last bit for
        // 126 of the 256 values, and 110 of them still differ after normalising.
        let p = ImageProcessor::clip(336);
        let mut differ = 0;
        for v in 0..=255u8 {
            let numpy = ((v as f64 * (1.0 / 255.0)) as f32 - CLIP_MEAN[0]) / CLIP_STD[0];
            let f32_product = (v as f32 * (1.0f32 / 255.0) - CLIP_MEAN[0]) / CLIP_STD[0];
            assert_eq!(p.normalise(v, 0).to_bits(), numpy.to_bits(), "{v}");
            differ += usize::from(numpy != f32_product);
        }
        assert_eq!(differ, 110);
    }
}
