//! `llava-lens`: the command line of the llava-lens runtime. This release has `bench`; `run`,
//! `explain` and `make-tiny` arrive with the model.

mod bench;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
    }
}
