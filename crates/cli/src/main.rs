//! `llava-lens`: the command line of the llava-lens runtime: kernels benchmarks, answering and
//! explaining with a Llava folder (the bundled demo model by default), generated scenes and the
//! held-out evaluations on them.

mod batch;
mod bench;
mod eval;
mod explain;
mod faithfulness;
mod input;
mod intervene;
mod output;
mod report;
mod run;
mod scenes;

use clap::{Parser, Subcommand};
use llava_lens_gpu::{ContextOptions, GpuContext};

#[derive(Debug, Parser)]
#[command(
    name = "llava-lens",
    version,
    about = "See why Llava answers what it answers: a WebGPU runtime and the Yu & Ananiadou (2024) attribution method."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time the runtime's kernels at Llava-1.5-7B shapes; one JSON line per measurement on stdout.
    Bench(bench::BenchArgs),
    /// Show the GPU adapter llava-lens would use, its optional features and limits (JSON).
    Info,
    /// Answer a question about an image with a Llava model folder (HF format).
    Run(run::RunArgs),
    /// Which heads and image patches made the answer: the Yu & Ananiadou (2024) attribution.
    Explain(explain::ExplainArgs),
    /// Explain every example of a JSONL/CSV file with the model loaded once: one JSON line each,
    /// appended; a rerun resumes, --shard I/N splits the ids over array jobs.
    Batch(batch::BatchArgs),
    /// Tables and figures over one or two batch outputs: head grids, layers, pointing game,
    /// accuracy, per tag; two runs compared with bootstrap intervals (HTML, JSON, CSV, SVG).
    Report(report::ReportArgs),
    /// Deletion/insertion curves of the map against mean attention and random orders (JSON).
    Faithfulness(faithfulness::FaithfulnessArgs),
    /// Ablate heads (zero or mean) or knock out image patches, and see the answer change; with
    /// --curve, heads removed in the paper's order vs random orders.
    Ablate(intervene::AblateArgs),
    /// Activation patching from a clean input into a corrupted one: per layer and position of
    /// the residual stream and per head at the last position, the share of the logit difference
    /// each restores.
    Patch(intervene::PatchArgs),
    /// Generate the answer and explain every token of it with the tokens before it.
    Answer(intervene::AnswerArgs),
    /// Crop the picture to the window the map points at and ask again, beside random windows.
    Zoom(intervene::ZoomArgs),
    /// Held-out measurements on generated scenes: accuracy, pointing game, faithfulness table (JSON).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Write generated scenes (PNG), exact object label maps and a JSONL manifest with colour questions.
    Scenes(scenes::ScenesArgs),
    /// Write a deterministic random tiny Llava in HF format (config.json, model.safetensors,
    /// tokenizer.json) for tests and experiments.
    MakeTiny {
        /// Output folder (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Grouped-query attention: 2 key/value heads for 4 query heads.
        #[arg(long)]
        gqa: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
        Command::Info => info(),
        Command::Run(args) => run::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Batch(args) => batch::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Faithfulness(args) => faithfulness::run(&args),
        Command::Ablate(args) => intervene::ablate(&args),
        Command::Patch(args) => intervene::patch_cmd(&args),
        Command::Answer(args) => intervene::answer(&args),
        Command::Zoom(args) => intervene::zoom(&args),
        Command::Scenes(args) => scenes::run(&args),
        Command::Eval(cmd) => eval::run(&cmd),
        Command::MakeTiny { out, seed, gqa } => {
            let c = llava_lens_model::tiny::write_tiny(&out, seed, gqa)?;
            eprintln!(
                "wrote a tiny Llava to {} (vision {}x{} px, {} text layers, {} kv heads, vocab {})",
                out.display(),
                c.vision.as_ref().map_or(0, |v| v.image_size),
                c.vision.as_ref().map_or(0, |v| v.image_size),
                c.text.num_hidden_layers,
                c.text.num_key_value_heads,
                c.text.vocab_size
            );
            Ok(())
        }
    }
}

fn info() -> anyhow::Result<()> {
    let ctx = GpuContext::new_blocking(ContextOptions::default())?;
    let i = &ctx.adapter_info;
    let l = ctx.limits();
    let record = serde_json::json!({
        "adapter": i.name,
        "backend": format!("{:?}", i.backend),
        "device_type": format!("{:?}", i.device_type),
        "driver": format!("{} {}", i.driver, i.driver_info),
        "shader_f16": ctx.has_shader_f16(),
        "subgroups": ctx.has_subgroups(),
        "subgroup_sizes": [i.subgroup_min_size, i.subgroup_max_size],
        "timestamp_query": ctx.has_timestamps(),
        "max_storage_binding_bytes": ctx.binding_limit(),
        "max_buffer_bytes": l.max_buffer_size,
        "max_workgroup_storage_bytes": l.max_compute_workgroup_storage_size,
        "min_storage_offset_alignment": l.min_storage_buffer_offset_alignment,
    });
    print_out(serde_json::to_string_pretty(&record)?)?;
    Ok(())
}

/// Print a result on stdout. A closed pipe (`llava-lens ... | head`) ends the program quietly
/// instead of panicking inside `println!`.
pub fn print_out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}
