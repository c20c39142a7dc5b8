//! Accounting of the device memory llava-lens allocates: every tensor and weight buffer is
//! counted while alive, and the peak is kept, so benchmarks can report peak GPU memory on any
//! backend (wgpu exposes no portable allocator statistics). Uniform and staging buffers, small
//! and transient, are not counted; buffers freed while the GPU still uses them are released by
//! wgpu a little later than counted here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wgpu::util::DeviceExt;

#[derive(Debug, Default)]
pub struct MemoryStats {
    live: AtomicU64,
    peak: AtomicU64,
    pub(crate) host: HostCounters,
}

/// Host-side work, counted for benchmarks (the per-token cost of decoding on the CPU is the
/// same on every GPU): buffers of any kind and bind groups created, dispatches recorded, submits.
#[derive(Debug, Default)]
pub(crate) struct HostCounters {
    pub buffers: AtomicU64,
    pub bind_groups: AtomicU64,
    pub dispatches: AtomicU64,
    pub submits: AtomicU64,
}

impl HostCounters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the host counters; the difference of two is the work between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounts {
    pub buffers: u64,
    pub bind_groups: u64,
    pub dispatches: u64,
    pub submits: u64,
}

impl std::ops::Sub for HostCounts {
    type Output = HostCounts;
    fn sub(self, o: HostCounts) -> HostCounts {
        HostCounts {
            buffers: self.buffers - o.buffers,
            bind_groups: self.bind_groups - o.bind_groups,
            dispatches: self.dispatches - o.dispatches,
            submits: self.submits - o.submits,
        }
    }
}

impl MemoryStats {
    fn alloc(&self, bytes: u64) {
        let now = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        HostCounters::add(&self.host.buffers);
    }

    /// The host counters now.
    pub fn host_counts(&self) -> HostCounts {
        let h = &self.host;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HostCounts { buffers: get(&h.buffers), bind_groups: get(&h.bind_groups), dispatches: get(&h.dispatches), submits: get(&h.submits) }
    }

    fn free(&self, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes in live buffers now.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Most bytes live at once since the context was made (or the last reset).
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self) {
        self.peak.store(self.live(), Ordering::Relaxed);
    }
}

/// A buffer counted in its context's [`MemoryStats`] until dropped.
#[derive(Debug)]
pub struct TrackedBuffer {
    buffer: wgpu::Buffer,
    stats: Arc<MemoryStats>,
}

// On the browser's WebGPU wgpu's handles are neither Send nor Sync (JS objects), so this Arc is
// only ever shared within the one thread that owns the device; natively it crosses threads.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
impl TrackedBuffer {
    pub(crate) fn new(device: &wgpu::Device, stats: &Arc<MemoryStats>, desc: &wgpu::BufferDescriptor<'_>) -> Arc<Self> {
        stats.alloc(desc.size);
        Arc::new(TrackedBuffer { buffer: device.create_buffer(desc), stats: stats.clone() })
    }

    pub(crate) fn with_data(device: &wgpu::Device, stats: &Arc<MemoryStats>, desc: &wgpu::util::BufferInitDescriptor<'_>) -> Arc<Self> {
        let buffer = device.create_buffer_init(desc);
        stats.alloc(buffer.size());
        Arc::new(TrackedBuffer { buffer, stats: stats.clone() })
    }
}

impl std::ops::Deref for TrackedBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for TrackedBuffer {
    fn drop(&mut self) {
        self.stats.free(self.buffer.size());
    }
}
