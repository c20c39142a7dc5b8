//! `llava-lens bench`: kernel timings at Llava-1.5-7B shapes (or scaled down with `--quick` for
//! software adapters), printed as JSON lines. On a real GPU each kernel is reported against its
//! ceiling: matvec GB/s over the measured buffer-copy bandwidth, GEMM GFLOP/s over the card's
//! rate. On lavapipe the numbers are regression baselines only, as ratios to the CPU reference.

mod cases;
mod e2e;
mod preprocess;
mod timing;

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use llava_lens_gpu::{ContextOptions, GpuContext};
use serde_json::{Value, json};

use cases::Case;

#[derive(Debug, Subcommand)]
pub enum BenchMode {
    /// The whole pipeline with random weights: image-to-first-token, prefill and decode tokens/s,
    /// peak GPU memory (one JSON line).
    E2e(e2e::E2eArgs),
    /// CPU time of preprocessing a photo for CLIP-L/336 and SigLIP-384 (Pillow-exact resize).
    Preprocess(preprocess::PreprocessArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// Shapes scaled down ~8x per dimension, for CPU adapters such as lavapipe.
    #[arg(long)]
    pub quick: bool,
    /// Timed samples per measurement (the median and minimum are reported).
    #[arg(long, default_value_t = 7)]
    pub repeats: usize,
    /// Untimed samples first (pipeline compilation, clocks ramping up).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Only kernels whose name contains this.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Also time the single-threaded CPU reference and report the speed-up (default on with --quick).
    #[arg(long)]
    pub cpu_ref: bool,
    /// Force matvec's lanes per row (a power of two from 8 to 256) instead of the shape-based choice.
    #[arg(long)]
    pub matvec_lanes: Option<u32>,
    /// Also write the results as a Markdown table to this file.
    #[arg(long)]
    pub markdown: Option<std::path::PathBuf>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.mode {
        Some(BenchMode::E2e(e)) => return e2e::run(e),
        Some(BenchMode::Preprocess(p)) => return preprocess::run(p),
        None => {}
    }
    if let Some(p) = &args.markdown {
        crate::output::check_writable(p, crate::output::Kind::Text, "--markdown")?;
    }
    let ctx = GpuContext::new_blocking(ContextOptions::default())?;
    let info = &ctx.adapter_info;
    let adapter = json!({
        "adapter": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "driver": format!("{} {}", info.driver, info.driver_info),
    });
    eprintln!("bench on {}", ctx.describe());
    let cpu_ref = args.cpu_ref || args.quick;
    let mut rows = Vec::new();
    let mut copy_gbps = None;
    for case in cases::all(&ctx, args.quick) {
        // The copy ceiling always runs: the other lines are reported as fractions of it.
        if case.kernel() != "copy" && args.kernel.as_deref().is_some_and(|k| !case.kernel().contains(k)) {
            continue;
        }
        let line = measure(&ctx, &case, args, cpu_ref, copy_gbps).with_context(|| format!("benchmarking {}", case.label()))?;
        if case.kernel() == "copy" {
            copy_gbps = line["gbps"].as_f64();
        }
        let mut record = adapter.clone();
        record.as_object_mut().unwrap().extend(line.as_object().unwrap().clone());
        crate::print_out(&record)?;
        std::io::stdout().flush()?;
        rows.push(record);
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown(&rows)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn measure(ctx: &GpuContext, case: &Case, args: &BenchArgs, cpu_ref: bool, copy_gbps: Option<f64>) -> anyhow::Result<Value> {
    let setup = case.setup(ctx, args.matvec_lanes)?;
    let t = timing::time(ctx, &setup, args.warmup, args.repeats.max(1))?;
    let secs = t.median_ms / 1e3;
    let gflops = setup.flops as f64 / secs / 1e9;
    let gbps = setup.bytes as f64 / secs / 1e9;
    let mut line = json!({
        "kernel": case.kernel(),
        "variant": setup.variant,
        "shape": case.shape(),
        "dtype": case.dtype(),
        "median_ms": t.median_ms,
        "min_ms": t.min_ms,
        "samples": t.samples,
        "dispatches_per_sample": setup.per_sample,
        "timer": if ctx.has_timestamps() && setup.in_compute_pass { "gpu-timestamps" } else { "wall-clock" },
        "flops": setup.flops,
        "bytes": setup.bytes,
        "gflops": gflops,
        "gbps": gbps,
    });
    let obj = line.as_object_mut().unwrap();
    if let (Some(copy), true) = (copy_gbps, case.bandwidth_bound()) {
        obj.insert("fraction_of_copy_bandwidth".into(), json!(gbps / copy));
    }
    if cpu_ref {
        if let Some(cpu_ms) = timing::time_cpu(&setup) {
            obj.insert("cpu_ref_ms".into(), json!(cpu_ms));
            obj.insert("speedup_vs_cpu_ref".into(), json!(cpu_ms / t.median_ms));
        }
    }
    Ok(line)
}

fn markdown(rows: &[Value]) -> String {
    let mut s = String::from(
        "| kernel | variant | shape | dtype | median ms | min ms | GFLOP/s | GB/s | of copy BW | CPU ref ms | speed-up vs CPU ref |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let num = |v: &Value, key: &str, digits: usize| v.get(key).and_then(Value::as_f64).map_or("-".to_string(), |x| format!("{x:.digits$}"));
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["kernel"].as_str().unwrap_or(""),
            r["variant"].as_str().unwrap_or("-"),
            r["shape"],
            r["dtype"].as_str().unwrap_or(""),
            num(r, "median_ms", 4),
            num(r, "min_ms", 4),
            num(r, "gflops", 1),
            num(r, "gbps", 1),
            num(r, "fraction_of_copy_bandwidth", 3),
            num(r, "cpu_ref_ms", 2),
            num(r, "speedup_vs_cpu_ref", 2),
        );
    }
    s
}
