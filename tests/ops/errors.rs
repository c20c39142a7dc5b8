//! Errors the device reports on its own (a buffer over its limits, running out of memory) become
//! errors of the next readback, never a panic (wgpu's default handler panics natively) nor
//! numbers read from buffers nothing wrote.

use llava_lens_gpu::{ContextOptions, GpuContext, GpuTensor, read_f32_blocking};

#[test]
fn a_buffer_over_the_device_limit_fails_the_next_read_instead_of_panicking() {
    // A context of its own: the error it records must not reach the other tests' reads.
    let ctx = GpuContext::new_blocking(ContextOptions::default()).unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = heard.clone();
    ctx.on_error(std::sync::Arc::new(move |m: &str| sink.lock().unwrap().push(m.to_string())));
    let ok = GpuTensor::from_f32(&ctx, &[1.0, 2.0, 3.0, 4.0], &[4], "small").unwrap();
    assert_eq!(read_f32_blocking(&ctx, &ok).unwrap(), [1.0, 2.0, 3.0, 4.0]);
    let too_big = (ctx.limits().max_buffer_size / 4) as usize + 64;
    let _huge = GpuTensor::zeros(&ctx, &[too_big], "larger than the device allows");
    let err = read_f32_blocking(&ctx, &ok).unwrap_err().to_string();
    assert!(err.starts_with("the GPU reported an error") && err.contains("larger than the device allows"), "{err}");
    assert_eq!(heard.lock().unwrap().len(), 1, "the listener heard it once: {:?}", heard.lock().unwrap());
    // Reported once: the next read works again.
    assert_eq!(read_f32_blocking(&ctx, &ok).unwrap(), [1.0, 2.0, 3.0, 4.0]);
}
