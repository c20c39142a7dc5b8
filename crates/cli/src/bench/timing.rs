//! Median-of-samples timing. A sample is `per_sample` instances of the op recorded into one
//! compute pass and submitted once; with timestamp queries the GPU's own clock brackets the pass,
//! otherwise the wall clock brackets submit-and-wait (which then includes submission latency).

use std::time::{Duration, Instant};

use llava_lens_gpu::{GpuContext, GpuError, Recorder, read_buffer};

use super::cases::Setup;

#[derive(Debug)]
pub struct Timing {
    /// Per op instance.
    pub median_ms: f64,
    pub min_ms: f64,
    pub samples: usize,
}

fn sample(ctx: &GpuContext, setup: &Setup) -> Result<f64, GpuError> {
    let use_gpu_clock = ctx.has_timestamps() && setup.in_compute_pass;
    let queries = use_gpu_clock
        .then(|| ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("bench"), ty: wgpu::QueryType::Timestamp, count: 2 }));
    let resolved = use_gpu_clock.then(|| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    });
    let mut rec = match &queries {
        Some(q) => Recorder::timed(ctx, "bench", q.clone()),
        None => Recorder::new(ctx, "bench"),
    };
    for _ in 0..setup.per_sample {
        (setup.record)(&mut rec)?;
    }
    if let (Some(q), Some(buf)) = (&queries, &resolved) {
        rec.encoder().resolve_query_set(q, 0..2, buf, 0);
    }
    let start = Instant::now();
    rec.submit();
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback { what: "bench", detail: e.to_string() })?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let total_ms = match &resolved {
        Some(buf) => {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&pollster::block_on(read_buffer(ctx, buf, 0, 16, "timestamps"))?);
            ticks[1].saturating_sub(ticks[0]) as f64 * ctx.queue.get_timestamp_period() as f64 / 1e6
        }
        None => wall_ms,
    };
    Ok(total_ms / setup.per_sample as f64)
}

/// Warm-up runs at least `warmup` samples and at least this long: a GPU left idle while the host
/// prepared the next case's weights drops its clocks (an H200 idles at 345 MHz) and takes a
/// moment to come back.
const WARMUP_MIN: Duration = Duration::from_millis(300);

pub fn time(ctx: &GpuContext, setup: &Setup, warmup: usize, repeats: usize) -> Result<Timing, GpuError> {
    let start = Instant::now();
    let mut warm = 0;
    while warm < warmup || start.elapsed() < WARMUP_MIN {
        sample(ctx, setup)?;
        warm += 1;
    }
    let mut ms: Vec<f64> = (0..repeats).map(|_| sample(ctx, setup)).collect::<Result<_, _>>()?;
    ms.sort_by(f64::total_cmp);
    Ok(Timing { median_ms: ms[ms.len() / 2], min_ms: ms[0], samples: ms.len() })
}

/// Median of three runs of the CPU reference, in ms.
pub fn time_cpu(setup: &Setup) -> Option<f64> {
    let f = setup.cpu.as_ref()?;
    let mut ms: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    Some(ms[1])
}
