//! `llava-lens faithfulness`: deletion and insertion curves of p(target) for the paper's map,
//! mean attention and random orders (METHOD.md sec. 7), as JSON.

use clap::{Args, ValueEnum};
use llava_lens_explain::faithfulness::{Operator, faithfulness};
use llava_lens_explain::{ExplainOptions, explain};

use crate::input::{Loaded, ModelInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperatorArg {
    /// Replace removed patches' projected embeddings by the mean embedding.
    Token,
    /// Replace removed patches' pixels by their per-channel mean and re-run everything.
    Pixel,
    /// Block the text positions' attention to removed patches.
    Knockout,
    /// All three.
    All,
}

#[derive(Debug, Args)]
pub struct FaithfulnessArgs {
    #[command(flatten)]
    pub input: ModelInput,
    #[arg(long, value_enum, default_value_t = OperatorArg::All)]
    pub operator: OperatorArg,
    /// Steps of the deletion/insertion grid.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Random orders to compare with.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
}

pub fn run(args: &FaithfulnessArgs) -> anyhow::Result<()> {
    let Loaded { dir, tokenizer, prompt, image, ctx, model, .. } = args.input.load(0)?;
    let opts = ExplainOptions { lens_k: 0, ..Default::default() };
    let e = pollster::block_on(explain(&model, &ctx, &prompt, &image.pixels, &opts))?;
    let mut results = Vec::new();
    for op in args.operator.operators() {
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

impl OperatorArg {
    pub fn operators(self) -> Vec<Operator> {
        match self {
            OperatorArg::Token => vec![Operator::Token],
            OperatorArg::Pixel => vec![Operator::Pixel],
            OperatorArg::Knockout => vec![Operator::Knockout],
            OperatorArg::All => vec![Operator::Token, Operator::Pixel, Operator::Knockout],
        }
    }
}
