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
    pool: BufferPool,
    /// Bind groups reused across dispatches; here because a buffer's release must forget them.
    pub(crate) bind_groups: crate::bind_groups::BindGroupCache,
}

/// Small activation buffers freed and kept for the next tensor of the same size (a decode step
/// allocates the same few hundred each token). They stay counted as live. Only tensors their
/// kernel writes in full come from here ([`crate::GpuTensor::output`]): a reused buffer holds
/// the last user's values, not zeros.
///
/// First in, first out: a decode step releases its buffers in about the order it took them, so
/// after a few steps each op gets the buffers it had before and its bind groups come from the
/// cache (crates/gpu/src/bind_groups.rs). Last in, first out shuffled them every token and no
/// bind group was reused (`bench e2e --preset tiny`: 33 made per token that way; this way
/// none from the ninth token on).
#[derive(Debug, Default)]
struct BufferPool {
    free: std::sync::Mutex<std::collections::HashMap<u64, std::collections::VecDeque<wgpu::Buffer>>>,
    bytes: AtomicU64,
}

/// Largest buffer kept (decode's activations are kilobytes; prefill's are not kept), and the
/// most bytes kept in all.
const POOL_MAX_BUFFER: u64 = 4 << 20;
const POOL_MAX_BYTES: u64 = 64 << 20;

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

    /// Bind groups kept for reuse, and the buffers they bind.
    pub fn bind_groups_kept(&self) -> (usize, usize) {
        self.bind_groups.len()
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

/// A buffer counted in its context's [`MemoryStats`] until dropped (or kept in its pool).
#[derive(Debug)]
pub struct TrackedBuffer {
    /// Always Some until dropped (taken then, to go back to the pool).
    buffer: Option<wgpu::Buffer>,
    stats: Arc<MemoryStats>,
    pooled: bool,
}

// On the browser's WebGPU wgpu's handles are neither Send nor Sync (JS objects), so this Arc is
// only ever shared within the one thread that owns the device; natively it crosses threads.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
impl TrackedBuffer {
    pub(crate) fn new(device: &wgpu::Device, stats: &Arc<MemoryStats>, desc: &wgpu::BufferDescriptor<'_>) -> Arc<Self> {
        stats.alloc(desc.size);
        Arc::new(TrackedBuffer { buffer: Some(device.create_buffer(desc)), stats: stats.clone(), pooled: false })
    }

    pub(crate) fn with_data(device: &wgpu::Device, stats: &Arc<MemoryStats>, desc: &wgpu::util::BufferInitDescriptor<'_>) -> Arc<Self> {
        let buffer = device.create_buffer_init(desc);
        stats.alloc(buffer.size());
        Arc::new(TrackedBuffer { buffer: Some(buffer), stats: stats.clone(), pooled: false })
    }

    /// A buffer of `desc.size` from the pool, or a new one; it goes back to the pool when
    /// dropped. Its contents are whatever its last user left.
    pub(crate) fn pooled(device: &wgpu::Device, stats: &Arc<MemoryStats>, desc: &wgpu::BufferDescriptor<'_>) -> Arc<Self> {
        let reused =
            stats.pool.free.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&desc.size).and_then(std::collections::VecDeque::pop_front);
        let buffer = match reused {
            Some(b) => {
                stats.pool.bytes.fetch_sub(desc.size, Ordering::Relaxed);
                b
            }
            None => {
                stats.alloc(desc.size);
                device.create_buffer(desc)
            }
        };
        Arc::new(TrackedBuffer { buffer: Some(buffer), stats: stats.clone(), pooled: true })
    }
}

impl std::ops::Deref for TrackedBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("a tracked buffer holds its buffer until dropped")
    }
}

impl Drop for TrackedBuffer {
    fn drop(&mut self) {
        let Some(buffer) = self.buffer.take() else { return };
        if !self.pooled {
            self.stats.bind_groups.forget(&buffer);
            self.stats.free(buffer.size());
            return;
        }
        // A recorder of this thread still open may have recorded work with the buffer: it goes
        // back to the pool once every such recorder is submitted, so that any later user's work
        // is queued after it (else another user's readback could see this work's writes).
        let stats = self.stats.clone();
        let deferred = OPEN_RECORDERS.with(|open| open.get() > 0);
        if deferred {
            DEFERRED.with(|d| d.borrow_mut().push((stats, buffer)));
        } else {
            stats.give_back(buffer);
        }
    }
}

thread_local! {
    /// Recorders of this thread created and not yet submitted or dropped.
    static OPEN_RECORDERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Pooled buffers dropped while one was open.
    static DEFERRED: std::cell::RefCell<Vec<(Arc<MemoryStats>, wgpu::Buffer)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A recorder was created on this thread.
pub(crate) fn recorder_opened() {
    OPEN_RECORDERS.with(|open| open.set(open.get() + 1));
}

/// A recorder of this thread was submitted or dropped: when none is left open, the buffers
/// dropped meanwhile go back to their pools.
pub(crate) fn recorder_closed() {
    let none_open = OPEN_RECORDERS.with(|open| {
        open.set(open.get().saturating_sub(1));
        open.get() == 0
    });
    if none_open {
        for (stats, buffer) in DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut())) {
            stats.give_back(buffer);
        }
    }
}

impl MemoryStats {
    /// Keeps a freed pooled buffer for reuse when it is small and the pool has room; frees it
    /// otherwise.
    fn give_back(&self, buffer: wgpu::Buffer) {
        let size = buffer.size();
        let pool = &self.pool;
        if size <= POOL_MAX_BUFFER && pool.bytes.load(Ordering::Relaxed) + size <= POOL_MAX_BYTES {
            pool.bytes.fetch_add(size, Ordering::Relaxed);
            pool.free.lock().unwrap_or_else(|p| p.into_inner()).entry(size).or_default().push_back(buffer);
        } else {
            self.bind_groups.forget(&buffer);
            self.free(size);
        }
    }
}
