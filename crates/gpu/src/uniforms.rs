//! The uniform data of dispatches, packed into shared buffers instead of one new buffer per
//! dispatch: a recorder writes each dispatch's parameters into the next slot of a 64 KiB chunk
//! (`queue.write_buffer`, which lands before the recorder's commands run) and binds the chunk at
//! that slot's dynamic offset. Chunks come from a pool on the context and go back to it once the
//! recorder's work is submitted: a later write to a chunk is ordered after that submission on
//! the queue, so reuse never changes what earlier work reads.

use std::sync::Mutex;

use crate::GpuContext;
use crate::memory::HostCounters;

/// Bytes of one chunk: WebGPU's baseline `maxUniformBufferBindingSize`.
const CHUNK_BYTES: u64 = 64 << 10;
/// Chunks kept for reuse (a decode step of a 7B model uses two).
const POOL_CHUNKS: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct UniformPool {
    free: Mutex<Vec<wgpu::Buffer>>,
    /// One new buffer per dispatch instead (the way before the pool, kept so `bench e2e` can
    /// measure both side by side).
    pub per_dispatch: std::sync::atomic::AtomicBool,
}

/// The chunks one recorder writes into, and its next free byte in the last one.
#[derive(Debug, Default)]
pub(crate) struct UniformSlots {
    chunks: Vec<wgpu::Buffer>,
    next: u64,
}

impl UniformSlots {
    /// Writes `bytes` into the next slot; returns the chunk and the slot's offset in it.
    pub fn push(&mut self, ctx: &GpuContext, bytes: &[u8]) -> (wgpu::Buffer, u32) {
        // Slots are aligned as dynamic offsets must be, and at least as large as the data.
        let align = u64::from(ctx.limits().min_uniform_buffer_offset_alignment).max(16);
        let size = (bytes.len() as u64).div_ceil(align) * align;
        if ctx.uniforms.per_dispatch.load(std::sync::atomic::Ordering::Relaxed) {
            HostCounters::add(&ctx.memory.host.buffers);
            let buffer = wgpu::util::DeviceExt::create_buffer_init(
                &ctx.device,
                &wgpu::util::BufferInitDescriptor { label: Some("uniform"), contents: bytes, usage: wgpu::BufferUsages::UNIFORM },
            );
            return (buffer, 0);
        }
        if self.chunks.is_empty() || self.next + size > CHUNK_BYTES {
            let reused = ctx.uniforms.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let chunk = reused.unwrap_or_else(|| {
                HostCounters::add(&ctx.memory.host.buffers);
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("uniforms"),
                    size: CHUNK_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            self.chunks.push(chunk);
            self.next = 0;
        }
        let chunk = self.chunks.last().expect("a chunk was just ensured").clone();
        let offset = self.next;
        ctx.queue.write_buffer(&chunk, offset, bytes);
        self.next += size;
        (chunk, offset as u32)
    }

    /// Hands the chunks back for reuse: call only once the work that reads them is submitted.
    pub fn release(&mut self, ctx: &GpuContext) {
        let mut free = ctx.uniforms.free.lock().unwrap_or_else(|p| p.into_inner());
        for chunk in self.chunks.drain(..) {
            if free.len() < POOL_CHUNKS {
                free.push(chunk);
            } else {
                ctx.memory.bind_groups.forget(&chunk);
            }
        }
        self.next = 0;
    }
}
