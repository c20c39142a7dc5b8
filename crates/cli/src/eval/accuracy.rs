//! `eval accuracy`: the model's top-1 next token after the answer prefix, against the scene's
//! answer, for every question of every scene (present shapes and the absent-shape question).

use clap::Args;
use llava_lens_model::preprocess::ImageProcessor;
use llava_lens_model::{RunOptions, WeightDType};
use serde_json::json;

use super::{SceneSet, ask, pixels};
use crate::input::{load_model, load_text_side, model_dir};

#[derive(Debug, Args)]
pub struct AccuracyArgs {
    #[command(flatten)]
    pub scenes: SceneSet,
    /// Weight dtypes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    pub dtype: Vec<WeightDType>,
}

pub fn run(a: &AccuracyArgs) -> anyhow::Result<()> {
    let dir = model_dir(a.scenes.model.as_deref())?;
    let mut results = Vec::new();
    let mut adapter = String::new();
    for &dtype in &a.dtype {
        let (config, tok) = load_text_side(&dir)?;
        let processor = ImageProcessor::load(&dir, &config)?;
        let spec = a.scenes.spec(&config)?;
        let m = load_model(&dir, config, tok, dtype)?;
        adapter = m.ctx.describe();
        let (mut right, mut total, mut right_absent, mut total_absent) = (0usize, 0usize, 0usize, 0usize);
        let mut by_count = [[0usize; 2]; 6];
        let mut mistakes = Vec::new();
        let bar = indicatif::ProgressBar::new(a.scenes.n);
        for scene in a.scenes.scenes(&spec) {
            let px = pixels(&scene, &processor)?;
            for q in &scene.questions {
                let asked = ask(&m.tokenizer, q)?;
                let out =
                    pollster::block_on(m.model.run(&m.ctx, &asked.prompt, &px, &RunOptions { max_new_tokens: 1, ..Default::default() }))?;
                let got = out.tokens[0];
                let ok = got == asked.answer;
                if q.object.is_some() {
                    (right, total) = (right + ok as usize, total + 1);
                    by_count[scene.objects.len()][0] += ok as usize;
                    by_count[scene.objects.len()][1] += 1;
                } else {
                    (right_absent, total_absent) = (right_absent + ok as usize, total_absent + 1);
                }
                if !ok && mistakes.len() < 20 {
                    mistakes
                        .push(json!({"scene": scene.index, "question": q.question, "expected": q.answer, "got": m.tokenizer.token(got)}));
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let rate = |r: usize, t: usize| if t == 0 { None } else { Some(r as f64 / t as f64) };
        let by: serde_json::Map<_, _> =
            (1..=4).filter(|&k| by_count[k][1] > 0).map(|k| (k.to_string(), json!(rate(by_count[k][0], by_count[k][1])))).collect();
        eprintln!("{}: {right}/{total} present-shape questions right, {right_absent}/{total_absent} absent-shape", dtype.name());
        results.push(json!({
            "dtype": dtype.name(),
            "accuracy": rate(right, total),
            "questions": total,
            "accuracy_absent": rate(right_absent, total_absent),
            "questions_absent": total_absent,
            "accuracy_by_object_count": by,
            "weight_bytes": m.model.weight_bytes,
            "mistakes": mistakes,
        }));
    }
    let doc = json!({"model": dir, "seed": a.scenes.seed, "n_scenes": a.scenes.n, "adapter": adapter, "results": results});
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
