//! The llava-lens web app. The page (Leptos, client-side rendered) never touches the model: a
//! dedicated Web Worker loads it onto the browser's WebGPU and answers typed messages
//! ([`protocol`]), so the page stays responsive while weights load and kernels run.
//!
//! Pure logic (messages, share links, patch geometry) compiles and is tested natively; the page
//! and the worker exist on wasm32 only.

pub mod batch;
pub mod files;
pub mod notice;
pub mod protocol;
pub mod share;
pub mod view;

#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod worker;
