//! Recording dispatches: one command encoder, consecutive dispatches share one compute pass.

use bytemuck::Pod;

use crate::memory::HostCounters;
use crate::uniforms::UniformSlots;

use crate::kernels::Kernel;
use crate::pipelines::PipelineKey;
use crate::readback::StagingBuffer;
use crate::{GpuContext, GpuError, GpuTensor};

/// Most workgroups in one dispatch dimension (WebGPU's `maxComputeWorkgroupsPerDimension` default).
const MAX_GROUPS_PER_DIM: u32 = 65535;

/// How many workgroups a dispatch launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Groups {
    /// `n` workgroups numbered linearly; laid out as x * y with x <= 65535 (shaders compute
    /// `wid.y * num_workgroups.x + wid.x` and ignore the excess).
    Linear(u32),
    /// An explicit 2-D grid (matmul tiles).
    Grid(u32, u32),
}

impl Groups {
    pub fn dims(self) -> (u32, u32) {
        match self {
            Groups::Linear(n) => {
                let x = n.clamp(1, MAX_GROUPS_PER_DIM);
                (x, n.div_ceil(x).max(1))
            }
            Groups::Grid(x, y) => (x.max(1), y.max(1)),
        }
    }
}

/// Records kernels into one command buffer; nothing runs until [`Recorder::submit`].
pub struct Recorder<'a> {
    ctx: &'a GpuContext,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    dispatches: usize,
    /// Timestamps written at the start and end of the (first) compute pass: benchmarks only.
    timestamps: Option<wgpu::QuerySet>,
    uniforms: UniformSlots,
}

impl std::fmt::Debug for Recorder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("dispatches", &self.dispatches).finish()
    }
}

impl<'a> Recorder<'a> {
    pub fn new(ctx: &'a GpuContext, label: &str) -> Self {
        crate::memory::recorder_opened();
        let encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Recorder { ctx, encoder, pass: None, dispatches: 0, timestamps: None, uniforms: UniformSlots::default() }
    }

    /// A recorder whose compute pass writes GPU timestamps 0 (start) and 1 (end) into
    /// `query_set` (needs `Features::TIMESTAMP_QUERY`). Used by benchmarks, which record one pass.
    pub fn timed(ctx: &'a GpuContext, label: &str, query_set: wgpu::QuerySet) -> Self {
        let mut rec = Self::new(ctx, label);
        rec.timestamps = Some(query_set);
        rec
    }

    /// The command encoder, for commands that are not dispatches (ends the current compute pass).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        &mut self.encoder
    }

    pub fn ctx(&self) -> &'a GpuContext {
        self.ctx
    }

    /// Dispatches recorded so far.
    pub fn dispatches(&self) -> usize {
        self.dispatches
    }

    pub(crate) fn dispatch<P: Pod>(
        &mut self,
        kernel: Kernel,
        entry: &'static str,
        overrides: &[(&'static str, u32)],
        params: &P,
        bindings: &[(u32, wgpu::BindingResource<'_>)],
        groups: Groups,
    ) {
        let key = PipelineKey { kernel, entry, overrides: overrides.to_vec() };
        let pipeline = self.ctx.pipelines.get(&self.ctx.device, &key);
        let (chunk, offset) = self.uniforms.push(self.ctx, bytemuck::bytes_of(params));
        let size = std::num::NonZeroU64::new(size_of::<P>() as u64);
        let uniform = wgpu::BufferBinding { buffer: &chunk, offset: 0, size };
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(uniform) }];
        entries.extend(bindings.iter().map(|(b, r)| wgpu::BindGroupEntry { binding: *b, resource: r.clone() }));
        let make = || {
            self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.layout,
                entries: &entries,
            })
        };
        // A new uniform buffer per dispatch (the old way, kept for comparison) never repeats.
        let (bind_group, made) = if self.ctx.uniforms.per_dispatch.load(std::sync::atomic::Ordering::Relaxed) {
            (make(), true)
        } else {
            self.ctx.memory.bind_groups.get_or_make(std::sync::Arc::as_ptr(&pipeline) as usize, &entries, make)
        };
        let (x, y) = groups.dims();
        let timestamps = self.timestamps.as_ref();
        let pass = self.pass.get_or_insert_with(|| {
            let timestamp_writes = timestamps.map(|query_set| wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
            self.encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("llava-lens"), timestamp_writes }).forget_lifetime()
        });
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
        self.dispatches += 1;
        let host = &self.ctx.memory.host;
        if made {
            HostCounters::add(&host.bind_groups);
        }
        HostCounters::add(&host.dispatches);
    }

    /// Copies `bytes` bytes between buffers (ends the current compute pass). Tensors use
    /// [`Recorder::copy_rows`] and [`Recorder::copy_elements`], which respect their offsets and
    /// bounds; this is for raw buffers (benchmarks, captures' own layout).
    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, bytes: u64) {
        self.encoder().copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
    }

    /// Copies elements `[src_at, src_at + len)` of `src` to `[dst_at, dst_at + len)` of `dst`,
    /// each tensor at its own offset in its buffer; a range past either tensor is an error.
    pub fn copy_elements(&mut self, src: &GpuTensor, src_at: usize, dst: &GpuTensor, dst_at: usize, len: usize) -> Result<(), GpuError> {
        let fits = |t: &GpuTensor, at: usize| at.checked_add(len).is_some_and(|end| end <= t.len());
        if !fits(src, src_at) || !fits(dst, dst_at) {
            return Err(GpuError::shape(
                "copy",
                format!(
                    "{len} elements from {src_at} of a {:?} tensor to {dst_at} of a {:?} tensor run past one of them",
                    src.shape(),
                    dst.shape()
                ),
            ));
        }
        if len > 0 {
            self.copy(
                src.buffer(),
                src.offset_bytes() + 4 * src_at as u64,
                dst.buffer(),
                dst.offset_bytes() + 4 * dst_at as u64,
                4 * len as u64,
            );
        }
        Ok(())
    }

    /// Copies `rows` rows from row `src_row` of `src` to row `dst_row` of `dst`. A tensor's rows
    /// run along its first axis (a 1-D tensor is one row); both must have the same row width.
    pub fn copy_rows(&mut self, src: &GpuTensor, src_row: usize, dst: &GpuTensor, dst_row: usize, rows: usize) -> Result<(), GpuError> {
        let (w, dw) = (row_width(src), row_width(dst));
        if w != dw {
            return Err(GpuError::shape(
                "copy_rows",
                format!("rows of {w} elements ({:?}) into rows of {dw} ({:?})", src.shape(), dst.shape()),
            ));
        }
        self.copy_elements(src, src_row * w, dst, dst_row * w, rows * w)
    }

    /// Submits what is recorded so far and starts a new command buffer. Temporaries of the
    /// submitted work can then be freed (long prefills flush after each layer to bound memory).
    pub fn flush(&mut self) -> wgpu::SubmissionIndex {
        self.pass = None;
        let fresh = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("llava-lens") });
        let done = std::mem::replace(&mut self.encoder, fresh);
        HostCounters::add(&self.ctx.memory.host.submits);
        self.ctx.queue.submit([done.finish()])
    }

    /// Submits the recorded work with a copy of `t` (u32) to the host at its end, in the same
    /// submission, through `staging` (a decode step's one submit: the next token's id comes back
    /// with it, and the step creates no buffer).
    pub async fn submit_and_read_u32(self, t: &GpuTensor, staging: &StagingBuffer) -> Result<Vec<u32>, GpuError> {
        Ok(self.submit_and_read_via(&[t], &staging.buffer).await?.u32(0))
    }

    /// Submits the recorded work with copies of `tensors` into one staging buffer at its end,
    /// and maps that buffer once: one submission and one wait for all of them, where reading
    /// each after the submit would cost a submission and a wait apiece.
    pub async fn submit_and_read(self, tensors: &[&GpuTensor]) -> Result<ReadBack, GpuError> {
        let total: u64 = tensors.iter().map(|t| t.size_bytes()).sum();
        let staging = StagingBuffer::new(self.ctx, total);
        self.submit_and_read_via(tensors, &staging.buffer).await
    }

    async fn submit_and_read_via(mut self, tensors: &[&GpuTensor], staging: &wgpu::Buffer) -> Result<ReadBack, GpuError> {
        let ctx = self.ctx;
        let sizes: Vec<u64> = tensors.iter().map(|t| t.size_bytes()).collect();
        let total: u64 = sizes.iter().sum();
        if total > staging.size() {
            return Err(GpuError::shape("readback", format!("{total} bytes into a staging buffer of {}", staging.size())));
        }
        let mut at = 0;
        for (t, &size) in tensors.iter().zip(&sizes) {
            if size > 0 {
                self.encoder().copy_buffer_to_buffer(t.buffer(), t.offset_bytes(), staging, at, size);
            }
            at += size;
        }
        self.submit();
        let bytes = crate::readback::map_staging(ctx, staging, "tensors read together").await?;
        let mut at = 0;
        Ok(ReadBack(
            sizes
                .iter()
                .map(|&size| {
                    let part = bytes[at as usize..(at + size) as usize].to_vec();
                    at += size;
                    part
                })
                .collect(),
        ))
    }

    pub fn submit(mut self) -> wgpu::SubmissionIndex {
        let ctx = self.ctx;
        self.pass = None;
        let fresh = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("llava-lens") });
        let done = std::mem::replace(&mut self.encoder, fresh);
        HostCounters::add(&ctx.memory.host.submits);
        let index = ctx.queue.submit([done.finish()]);
        self.uniforms.release(ctx);
        index
        // Dropping self now closes the recorder (its deferred buffers may return to the pool).
    }
}

/// The bytes of tensors read back together ([`Recorder::submit_and_read`]), in the order they
/// were asked for.
#[derive(Debug)]
pub struct ReadBack(Vec<Vec<u8>>);

impl ReadBack {
    pub fn f32(&self, i: usize) -> Vec<f32> {
        bytemuck::pod_collect_to_vec(&self.0[i])
    }

    pub fn u32(&self, i: usize) -> Vec<u32> {
        bytemuck::pod_collect_to_vec(&self.0[i])
    }

    /// Bytes read back in all.
    pub fn bytes(&self) -> u64 {
        self.0.iter().map(|p| p.len() as u64).sum()
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        // Unsubmitted work never runs; submitted work is queued: either way this recorder no
        // longer holds back pooled buffers.
        crate::memory::recorder_closed();
    }
}

/// Elements per row: the product of every axis after the first (a 1-D tensor is one row).
fn row_width(t: &GpuTensor) -> usize {
    match t.shape() {
        [] | [_] => t.len(),
        [_, rest @ ..] => rest.iter().product(),
    }
}
