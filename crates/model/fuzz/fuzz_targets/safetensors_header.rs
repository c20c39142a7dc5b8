//! Any bytes as a checkpoint shard: opening must return Ok or a clear error, never panic, and
//! every tensor it lists must be readable with its declared shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::Checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = Checkpoint::from_files(vec![("fuzz.safetensors".into(), data.to_vec())]) {
        for name in ckpt.names() {
            let raw = ckpt.raw(&name).expect("listed tensors are readable");
            let shape = raw.shape.to_vec();
            let _ = ckpt.f32(&name, &shape);
        }
    }
});
