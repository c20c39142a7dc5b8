//! `llava-lens scenes`: write generated scenes (PNG), their label maps and a JSONL manifest.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use llava_lens_scenes::{SceneRecord, SceneSpec, generate};

#[derive(Debug, Args)]
pub struct ScenesArgs {
    /// Output folder (created if missing): NNNNNN.png, NNNNNN.mask.png, scenes.jsonl, and
    /// examples.jsonl (one line per question, the input of `llava-lens batch`).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of scenes.
    #[arg(long)]
    pub n: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// First scene index (scenes are independent: index i of a seed is always the same scene).
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Image side in pixels (the model's input size; 168 for the demo model).
    #[arg(long, default_value_t = 168)]
    pub size: usize,
    #[arg(long, default_value_t = 1)]
    pub min_objects: usize,
    #[arg(long, default_value_t = 4)]
    pub max_objects: usize,
    /// Rotate objects by up to +-this many degrees (the demo model was trained upright).
    #[arg(long, default_value_t = 0.0)]
    pub max_rotation_deg: f32,
}

pub fn run(a: &ScenesArgs) -> anyhow::Result<()> {
    let spec = SceneSpec {
        size: a.size,
        min_objects: a.min_objects,
        max_objects: a.max_objects,
        max_rotation_deg: a.max_rotation_deg,
        ..SceneSpec::default()
    };
    if let Some(p) = spec.problem() {
        anyhow::bail!("--size/--min-objects/--max-objects: {p}");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let manifest = a.out.join("scenes.jsonl");
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(&manifest).with_context(|| format!("creating {}", manifest.display()))?);
    let examples_path = a.out.join("examples.jsonl");
    let mut examples =
        std::io::BufWriter::new(std::fs::File::create(&examples_path).with_context(|| format!("creating {}", examples_path.display()))?);
    let bar = indicatif::ProgressBar::new(a.n);
    for index in a.start..a.start + a.n {
        let scene = generate(a.seed, index, &spec);
        let record = scene.record();
        let image = a.out.join(&record.image);
        scene.image.save(&image).with_context(|| format!("writing {}", image.display()))?;
        let mask = a.out.join(&record.mask);
        scene.labels.save(&mask).with_context(|| format!("writing {}", mask.display()))?;
        writeln!(jsonl, "{}", serde_json::to_string(&record)?)?;
        for e in batch_examples(&record) {
            writeln!(examples, "{e}")?;
        }
        bar.inc(1);
    }
    jsonl.flush()?;
    examples.flush()?;
    bar.finish_and_clear();
    eprintln!("wrote {} scenes (seed {}) to {}", a.n, a.seed, a.out.display());
    Ok(())
}

/// A scene's questions as `batch` examples: id `NNNNNN-qJ`; tags the shape asked about, the
/// number of objects and whether it is there; the object's box, colour and shape word when it is.
pub fn batch_examples(r: &SceneRecord) -> Vec<serde_json::Value> {
    r.questions
        .iter()
        .enumerate()
        .map(|(j, q)| {
            let object = q.object.and_then(|id| r.objects.iter().find(|o| o.id == id));
            let mut e = serde_json::json!({
                "id": format!("{:06}-q{j}", r.index),
                "image": r.image,
                "question": q.question,
                "answer_prefix": q.answer_prefix,
                "answer": q.answer,
                "tags": [q.shape.clone(), format!("objects-{}", r.objects.len()), if object.is_some() { "present" } else { "absent" }],
                "object": q.shape,
            });
            if let Some(o) = object {
                e["box"] = serde_json::json!(o.bbox);
                e["color"] = serde_json::json!(o.color);
                // The label map marks each object by its id: the exact visible mask.
                e["mask"] = serde_json::json!(r.mask);
                e["mask_value"] = serde_json::json!(o.id);
            }
            e
        })
        .collect()
}
