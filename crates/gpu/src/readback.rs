//! Copying small results back to the host. Asynchronous (the browser cannot block); natively
//! the `_blocking` forms poll the device.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::{GpuContext, GpuError, GpuTensor};

#[derive(Default)]
struct MapState {
    result: Option<Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

/// Resolves when `map_async`'s callback has fired.
struct MapFuture(Arc<Mutex<MapState>>);

impl Future for MapFuture {
    type Output = Result<(), wgpu::BufferAsyncError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.lock().unwrap();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Copies `size` bytes at `offset` of `buffer` (which needs `COPY_SRC`) to the host.
pub async fn read_buffer(ctx: &GpuContext, buffer: &wgpu::Buffer, offset: u64, size: u64, what: &'static str) -> Result<Vec<u8>, GpuError> {
    let staging = staging_buffer(ctx, size);
    let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
    enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
    ctx.count_readback();
    ctx.queue.submit([enc.finish()]);
    map_staging(ctx, &staging, what).await
}

/// A host-mappable buffer kept for repeated reads of the same size (a decode loop's token id),
/// so a step creates no buffer.
#[derive(Debug)]
pub struct StagingBuffer {
    pub(crate) buffer: wgpu::Buffer,
}

impl StagingBuffer {
    /// Room for `bytes` (at least 4) bytes; counted as one buffer created.
    pub fn new(ctx: &GpuContext, bytes: u64) -> StagingBuffer {
        crate::memory::HostCounters::add(&ctx.memory.host.buffers);
        StagingBuffer { buffer: staging_buffer(ctx, bytes.max(4)) }
    }

    pub fn size(&self) -> u64 {
        self.buffer.size()
    }
}

/// A host-mappable buffer of `size` bytes for a readback.
pub(crate) fn staging_buffer(ctx: &GpuContext, size: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The bytes of `staging` once the work that fills it (already submitted) is done.
pub(crate) async fn map_staging(ctx: &GpuContext, staging: &wgpu::Buffer, what: &'static str) -> Result<Vec<u8>, GpuError> {
    let state = Arc::new(Mutex::new(MapState::default()));
    let cb_state = state.clone();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let mut s = cb_state.lock().unwrap();
        s.result = Some(r);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    // An error the device reported meanwhile is the cause of a failed poll or map, and means
    // the bytes may come from buffers nothing wrote: it is checked first, and after the map.
    #[cfg(not(target_arch = "wasm32"))]
    if let Err(e) = ctx.device.poll(wgpu::PollType::wait_indefinitely()) {
        ctx.check_errors()?;
        return Err(GpuError::Readback { what, detail: e.to_string() });
    }
    let mapped = MapFuture(state).await;
    ctx.check_errors()?;
    mapped.map_err(|e| GpuError::Readback { what, detail: e.to_string() })?;
    let bytes = staging.slice(..).get_mapped_range().map_err(|e| GpuError::Readback { what, detail: e.to_string() })?.to_vec();
    staging.unmap();
    Ok(bytes)
}

async fn read_bytes(ctx: &GpuContext, t: &GpuTensor, what: &'static str) -> Result<Vec<u8>, GpuError> {
    read_buffer(ctx, t.buffer(), t.offset_bytes(), t.size_bytes().max(4), what).await
}

pub async fn read_f32(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<f32>, GpuError> {
    let bytes = read_bytes(ctx, t, "f32 tensor").await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes[..t.size_bytes() as usize]))
}

pub async fn read_u32(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<u32>, GpuError> {
    let bytes = read_bytes(ctx, t, "u32 tensor").await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes[..t.size_bytes() as usize]))
}

#[cfg(not(target_arch = "wasm32"))]
pub fn read_f32_blocking(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<f32>, GpuError> {
    pollster::block_on(read_f32(ctx, t))
}

#[cfg(not(target_arch = "wasm32"))]
pub fn read_u32_blocking(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<u32>, GpuError> {
    pollster::block_on(read_u32(ctx, t))
}
