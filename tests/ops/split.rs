//! Matrices larger than the storage-binding size are split by rows; forcing a tiny binding limit
//! exercises the split on any adapter.

use llava_lens_gpu::{GpuMatrix, GpuTensor, Recorder, ops};
use llava_lens_tensor::cpu;
use llava_lens_tensor::{DType, HostMatrix, Rng};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

#[test]
fn split_matrices_give_the_same_results() {
    // 1 KiB bindings: a 53 x 64 f32 matrix (256 bytes a row) becomes 14 blocks of <= 3 rows.
    let small = ctx().with_binding_limit(1024);
    let (n, k, m) = (53, 64, 5);
    for dtype in [DType::F32, DType::F16, DType::Q8G32, DType::Q4G32] {
        let host = HostMatrix::from_f32(n, k, &Rng::new(7).normal(n * k, 1.0), dtype).unwrap();
        let w = GpuMatrix::upload(&small, &host, "vocab").unwrap();
        assert!(w.blocks.len() > 1, "{dtype}: expected a split, got one block");
        assert_eq!(w.blocks.iter().map(|b| b.rows).sum::<usize>(), n);
        for b in &w.blocks {
            assert!(b.values_size <= 1024, "{dtype}: block plane of {} bytes", b.values_size);
        }
        let x = Rng::new(8).uniform(m * k, -1.0, 1.0);
        let y = Guarded::new("split matmul", &[m, n]);
        let yv = Guarded::new("split matvec", &[n]);
        let ids = [0u32, 52, 17, 3, 51, 26];
        let e = Guarded::new("split embedding", &[ids.len(), k]);
        let mut rec = Recorder::new(&small, "split");
        ops::matmul(&mut rec, &upload(&x, &[m, k]), &w, y.tensor()).unwrap();
        ops::matvec(&mut rec, &upload(&x[..k], &[k]), &w, yv.tensor()).unwrap();
        ops::embedding(&mut rec, &GpuTensor::from_u32(&small, &ids, &[ids.len()], "ids").unwrap(), &w, e.tensor()).unwrap();
        rec.submit();
        let tol = Tol::new(2e-5, 2e-5);
        assert_close(&format!("split matmul {dtype}"), &y.read(), &cpu::matmul(&x, m, &host), tol);
        assert_close(&format!("split matvec {dtype}"), &yv.read(), &cpu::matvec(&x[..k], &host), tol);
        assert_close(&format!("split embedding {dtype}"), &e.read(), &cpu::embedding(&ids, &host).unwrap(), Tol::new(0.0, 0.0));
    }
}

#[test]
fn a_row_larger_than_a_binding_is_a_clear_error() {
    let tiny = ctx().with_binding_limit(600);
    let host = HostMatrix::from_f32(2, 256, &[0.5; 512], DType::F32).unwrap();
    let err = GpuMatrix::upload(&tiny, &host, "lm_head").unwrap_err().to_string();
    assert!(err.contains("lm_head") && err.contains("1024 bytes"), "{err}");
}
