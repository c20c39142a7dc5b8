//! Adapter and device: the same code natively and on WebGPU.

use std::sync::{Arc, Mutex};

use crate::GpuError;
use crate::memory::MemoryStats;
use crate::pipelines::PipelineCache;

/// The largest storage binding and buffer we ask for even where an adapter offers more: beyond it
/// drivers get slow to allocate and the browser's limits are 1 GiB anyway.
pub const MAX_BINDING_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub struct ContextOptions {
    pub power_preference: wgpu::PowerPreference,
    /// Lower the storage-binding size the planner uses (never above the device's). Tests force
    /// tiny values to exercise the row splitting of large matrices.
    pub binding_limit: Option<u64>,
    /// Do not enable shader-f16, subgroups or timestamp queries even where present.
    pub core_features_only: bool,
    /// Kernels that trade exactness for speed, off unless asked (they change results within
    /// their stated bounds, beyond the f32 parity the model is tested at).
    pub reduced_precision: ReducedPrecision,
}

/// Which reduced-precision kernels `ops::matmul` and `ops::matvec` may pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReducedPrecision {
    /// Prefill GEMMs in f16 arithmetic with f32 accumulation (`matmul_f16.wgsl`, within
    /// 6 * 2^-11 of the absolute dot product) where the device has shader-f16.
    pub f16_gemm: bool,
    /// Decode matvecs of Q8/Q4 weights on 8-bit activations (`matvec_dot4.wgsl`, within
    /// sum_k |W| d_x / 2).
    pub int8_matvec: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            binding_limit: None,
            core_features_only: false,
            reduced_precision: ReducedPrecision::default(),
        }
    }
}

/// A device, its queue, what it can do, and the compiled pipelines. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: wgpu::Limits,
    binding_limit: u64,
    reduced_precision: ReducedPrecision,
    pub(crate) pipelines: Arc<PipelineCache>,
    pub(crate) memory: Arc<MemoryStats>,
    pub(crate) uniforms: Arc<crate::uniforms::UniformPool>,
    /// A buffer kernels use for intermediate results within a dispatch pair (split-key decode
    /// attention's partials), grown as needed and reused: dispatches are ordered, so one call's
    /// use never overlaps another's.
    scratch: Arc<Mutex<Option<crate::GpuTensor>>>,
    /// 16 bytes bound where an entry point's binding carries nothing (the scales of f32 weights).
    pub(crate) dummy: wgpu::Buffer,
    errors: Arc<ReportedErrors>,
}

/// What to call with each error the device reports on its own (see [`GpuContext::on_error`]).
pub type ErrorListener = Arc<dyn Fn(&str) + Send + Sync>;

/// Errors the device reports outside any call's result (validation, out of memory). Natively
/// wgpu's default handler panics on them and in a browser they only reach the console; kept
/// here, the first one becomes the error of the next readback or load instead.
#[derive(Default)]
struct ReportedErrors {
    first: Mutex<Option<String>>,
    listener: Mutex<Option<ErrorListener>>,
}

impl std::fmt::Debug for ReportedErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedErrors").field("first", &self.first.lock().ok().and_then(|g| g.clone())).finish()
    }
}

impl ReportedErrors {
    fn report(&self, e: &wgpu::Error) {
        let message = match e {
            wgpu::Error::OutOfMemory { .. } => format!("the GPU ran out of memory ({e})"),
            _ => format!("the GPU reported an error: {e}"),
        };
        // A poisoned lock only means another thread panicked while reporting: keep going.
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| message.clone());
        drop(first);
        if let Some(listen) = self.listener.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            listen(&message);
        }
    }
}

/// What to do about a missing adapter depends on where the runtime runs: natively a driver is
/// missing, in a page the browser lacks WebGPU.
#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_ADVICE: &str = "wgpu needs a Vulkan, Metal or DX12 driver. On Linux without a GPU install Mesa's software \
     Vulkan driver (lavapipe): `apt-get install mesa-vulkan-drivers libvulkan1`, and set WGPU_BACKEND=vulkan.";
#[cfg(target_arch = "wasm32")]
const NO_ADAPTER_ADVICE: &str = "This browser offers no WebGPU adapter, so the model cannot run here: use a browser with \
     WebGPU (Chrome or Edge 113+, or Safari/Firefox with WebGPU on).";

/// Features used when the adapter has them, never required (SwiftShader has no shader-f16).
const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16.union(wgpu::Features::SUBGROUP).union(wgpu::Features::TIMESTAMP_QUERY);

impl GpuContext {
    /// Picks the high-performance adapter of the backends allowed by `WGPU_BACKEND` (all native
    /// ones by default; WebGPU in the browser) and opens a device with the adapter's limits, storage
    /// bindings and buffers capped at [`MAX_BINDING_BYTES`].
    pub async fn new(opts: ContextOptions) -> Result<Self, GpuError> {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = format!("{:?}", desc.backends);
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: opts.power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter { backends, advice: NO_ADAPTER_ADVICE, detail: e.to_string() })?;
        let adapter_info = adapter.get_info();
        let mut limits = adapter.limits();
        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(MAX_BINDING_BYTES);
        limits.max_buffer_size = limits.max_buffer_size.min(MAX_BINDING_BYTES);
        let features = if opts.core_features_only { wgpu::Features::empty() } else { adapter.features() & OPTIONAL_FEATURES };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("llava-lens"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::Device { adapter: adapter_info.name.clone(), detail: e.to_string() })?;
        let errors = Arc::new(ReportedErrors::default());
        let slot = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| slot.report(&e)));
        let binding_limit = opts.binding_limit.unwrap_or(u64::MAX).min(limits.max_storage_buffer_binding_size);
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dummy binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuContext {
            device,
            queue,
            adapter_info,
            features,
            limits,
            binding_limit,
            reduced_precision: opts.reduced_precision,
            pipelines: Arc::default(),
            memory: Arc::default(),
            uniforms: Arc::default(),
            scratch: Arc::default(),
            dummy,
            errors,
        })
    }

    /// The first error the device reported on its own since the last check (a buffer larger
    /// than the device allows, running out of memory, an invalid dispatch), as an error. Reads
    /// and loads call it, so such an error fails them instead of returning numbers from buffers
    /// nothing wrote.
    pub fn check_errors(&self) -> Result<(), GpuError> {
        match self.errors.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(message) => Err(GpuError::Reported(message)),
            None => Ok(()),
        }
    }

    /// Also tell `listener` of each error as the device reports it (a page posts it at once).
    pub fn on_error(&self, listener: ErrorListener) {
        *self.errors.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    /// [`GpuContext::new`] driven to completion on this thread (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(opts: ContextOptions) -> Result<Self, GpuError> {
        pollster::block_on(Self::new(opts))
    }

    /// The same device with a smaller storage-binding size for planning (tests of row splitting).
    pub fn with_binding_limit(&self, bytes: u64) -> GpuContext {
        GpuContext { binding_limit: bytes.min(self.limits.max_storage_buffer_binding_size), ..self.clone() }
    }

    /// Device memory held in llava-lens's tensors and weights: live and peak bytes.
    pub fn memory(&self) -> &MemoryStats {
        &self.memory
    }

    /// Uniform data in one new buffer per dispatch (true) or in pooled chunks (false, the
    /// default): for benchmarks measuring the difference.
    pub fn set_uniform_buffer_per_dispatch(&self, on: bool) {
        self.uniforms.per_dispatch.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The scratch buffer, at least `len` floats (shaped `[len]`).
    pub(crate) fn scratch(&self, len: usize) -> Result<crate::GpuTensor, GpuError> {
        let mut held = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = held.as_ref().filter(|t| t.len() >= len) {
            return t.view(self, 0, &[len]);
        }
        // Grown geometrically, so a sequence growing a token at a time reallocates rarely.
        let t = crate::GpuTensor::zeros(self, &[len.next_power_of_two().max(1024)], "scratch");
        *held = Some(t.clone());
        t.view(self, 0, &[len])
    }

    /// A readback's staging buffer and submit, counted.
    pub(crate) fn count_readback(&self) {
        crate::memory::HostCounters::add(&self.memory.host.buffers);
        crate::memory::HostCounters::add(&self.memory.host.submits);
    }

    /// Largest storage binding the planner may use, in bytes.
    pub fn binding_limit(&self) -> u64 {
        self.binding_limit
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    pub fn has_shader_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// The reduced-precision kernels this context was opened with.
    pub fn reduced_precision(&self) -> ReducedPrecision {
        self.reduced_precision
    }

    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// One line for logs and benchmark records: name, backend, device type, driver.
    pub fn describe(&self) -> String {
        let i = &self.adapter_info;
        format!("{} ({:?}, {:?}, driver {} {})", i.name, i.backend, i.device_type, i.driver, i.driver_info)
    }
}
