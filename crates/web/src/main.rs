//! The page: mounts the Leptos app (wasm32 only; natively there is nothing to run).

fn main() {
    #[cfg(target_arch = "wasm32")]
    llava_lens_web::ui::start();
}
