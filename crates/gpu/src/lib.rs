//! The llava-lens runtime on wgpu: one code path for native (Vulkan, Metal, DX12) and the browser
//! (WebGPU). Every kernel lives in `shaders/<family>.wgsl`, is registered once in [`kernels`], and
//! has one encoder function in [`ops`] with the same name as its CPU reference in
//! `llava_lens_tensor::cpu`.
//!
//! Work is recorded into a [`Recorder`] (one command encoder, one compute pass per run of
//! dispatches), submitted once, and only what a caller asks for is read back.

mod bind_groups;
pub mod capture;
mod context;
mod error;
pub mod kernels;
mod memory;
pub mod ops;
pub mod params;
mod pipelines;
mod readback;
mod recorder;
mod tensor;
mod uniforms;

pub use context::{ContextOptions, GpuContext, MAX_BINDING_BYTES, ReducedPrecision};
pub use error::GpuError;
pub use memory::{HostCounts, MemoryStats, TrackedBuffer};
pub use readback::{StagingBuffer, read_buffer, read_f32, read_u32};
#[cfg(not(target_arch = "wasm32"))]
pub use readback::{read_f32_blocking, read_u32_blocking};
pub use recorder::{ReadBack, Recorder};
pub use tensor::{GpuMatrix, GpuTensor, MatrixBlock};
