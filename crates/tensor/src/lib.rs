//! Host side of the llava-lens runtime: data types, the Q8G32/Q4G32 block formats, host matrices
//! laid out exactly as the GPU reads them, a seeded RNG for tests and benchmarks, and the plain CPU
//! reference of every kernel (`cpu::*`, same names as `shaders/*.wgsl` and `gpu::ops::*`).
//!
//! Nothing here touches wgpu, so everything tests on any machine and compiles for wasm32.

mod convert;
pub mod cpu;
mod dtype;
mod error;
mod matrix;
mod quant;
mod rng;

pub use convert::decode_to_f32;
pub use dtype::DType;
pub use error::TensorError;
pub use matrix::{HostMatrix, MatrixData, PLANE_ALIGN};
pub use quant::{GROUP_SIZE, QuantFormat, QuantPlanes};
pub use rng::Rng;
