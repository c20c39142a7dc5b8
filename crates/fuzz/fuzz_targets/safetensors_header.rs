//! Any bytes as a checkpoint shard: opening must return Ok or a clear error, never panic, and
//! every tensor it lists must be readable with its declared shape. The streamed reader (the
//! browser's path) must accept exactly what the in-memory one accepts, with the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava_lens_model::checkpoint::StreamedCheckpoint;
use llava_lens_model::{Checkpoint, WeightSource};

fuzz_target!(|data: &[u8]| {
    let files = [("fuzz.safetensors".into(), data.len() as u64)];
    let streamed = pollster::block_on(StreamedCheckpoint::open(vec![data.to_vec()], &files));
    match Checkpoint::from_files(vec![("fuzz.safetensors".into(), data.to_vec())]) {
        Ok(ckpt) => {
            let streamed = streamed.expect("the streamed reader accepts what the in-memory one does");
            assert_eq!(streamed.names(), ckpt.names());
            for name in ckpt.names() {
                let raw = ckpt.raw(&name).expect("listed tensors are readable");
                let shape = raw.shape.to_vec();
                let a = ckpt.f32(&name, &shape).ok();
                let b = pollster::block_on(streamed.f32(&name, &shape)).ok();
                assert_eq!(a.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()), b.map(|v| v.iter().map(|x| x.to_bits()).collect()));
            }
        }
        Err(_) => assert!(streamed.is_err(), "the streamed reader refuses what the in-memory one refuses"),
    }
});
