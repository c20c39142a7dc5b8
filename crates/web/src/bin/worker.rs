//! The Web Worker that owns the GPU runtime (wasm32 only).

fn main() {
    #[cfg(target_arch = "wasm32")]
    llava_lens_web::worker::start();
}
