//! `llava-lens faithfulness`: deletion and insertion curves of p(target) for the paper's map,
//! mean attention and random orders (docs/METHOD.md sec. 7), as JSON.

use anyhow::Context;
use clap::Args;
use llava_lens_explain::faithfulness::{Operator, faithfulness};
use llava_lens_explain::{ExplainOptions, explain};

use crate::input::{Loaded, ModelInput};

/// Perturbation operators chosen on the command line: token, pixel, knockout, a comma-separated
/// list of them, or all (crates/explain/src/faithfulness.rs says what each does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operators(pub Vec<Operator>);

pub fn parse_operators(s: &str) -> Result<Operators, String> {
    Operator::parse_list(s).map(Operators)
}

#[derive(Debug, Args)]
pub struct FaithfulnessArgs {
    #[command(flatten)]
    pub input: ModelInput,
    /// token (replace removed patches' projected embeddings by the mean), pixel (replace their
    /// pixels by their mean and re-run everything), knockout (block the text's attention to
    /// them), a comma-separated list, or all.
    #[arg(long, default_value = "all", value_parser = parse_operators)]
    pub operator: Operators,
    /// Steps of the deletion/insertion grid.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Random orders to compare with.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
}

pub fn run(args: &FaithfulnessArgs) -> anyhow::Result<()> {
    if args.input.image.is_none() {
        anyhow::bail!("faithfulness removes image patches: give --image");
    }
    let Loaded { dir, tokenizer, prompt, image, ctx, model, .. } = args.input.load(0)?;
    let image = image.context("the image was not loaded")?;
    let opts = ExplainOptions { lens_k: 0, ..Default::default() };
    let e = pollster::block_on(explain(&model, &ctx, &prompt, &image.pixels, &opts))?;
    let mut results = Vec::new();
    for &op in &args.operator.0 {
        let f = pollster::block_on(faithfulness(&model, &ctx, &prompt, &image.pixels, &e, op, args.steps, args.seeds))?;
        eprintln!(
            "{op:?}: deletion AUC map {:?} / mean attention {:?} / random {:?}; insertion AUC map {:?} / mean attention {:?} / random {:?}",
            f.map.deletion_auc,
            f.mean_attention.deletion_auc,
            f.random_mean_auc.0,
            f.map.insertion_auc,
            f.mean_attention.insertion_auc,
            f.random_mean_auc.1
        );
        if let Some(w) = &f.warning {
            eprintln!("warning ({op:?}): {w}");
        }
        results.push(f);
    }
    let doc = serde_json::json!({
        "model": dir,
        "image": args.input.image,
        "dtype": model.dtype.name(),
        "target": {"id": e.target.id, "text": tokenizer.token(e.target.id)},
        "best_head": e.best_head,
        "lower_deletion_auc_is_better": true,
        "results": results,
    });
    crate::print_out(serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
