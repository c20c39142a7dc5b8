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

/// A matrix written a few rows at a time into allocated buffers is the matrix uploaded whole (the
/// streaming loader's path), split into blocks or not: same layout, and every element the GPU
/// decodes (an embedding look-up of every row) is exactly the host's.
#[test]
fn matrices_written_by_rows_equal_whole_uploads() {
    for (limit, rows, cols) in [(1024u64, 53usize, 64usize), (u64::MAX, 37, 128), (1024, 29, 96)] {
        let c = if limit == u64::MAX { ctx().clone() } else { ctx().with_binding_limit(limit) };
        for dtype in [DType::F32, DType::F16, DType::Q8G32, DType::Q4G32] {
            if !GpuMatrix::rows_writable(cols, dtype) {
                continue;
            }
            let host = HostMatrix::from_f32(rows, cols, &Rng::new(11).normal(rows * cols, 1.0), dtype).unwrap();
            let whole = GpuMatrix::upload(&c, &host, "whole").unwrap();
            let parts = GpuMatrix::allocate(&c, rows, cols, dtype, "parts").unwrap();
            let mut start = 0;
            while start < rows {
                let end = (start + 5).min(rows);
                parts.write_rows(&c, start, &host.rows_range(start, end).unwrap()).unwrap();
                start = end;
            }
            assert_eq!(whole.blocks.len(), parts.blocks.len(), "{dtype} {rows}x{cols}");
            for (a, b) in whole.blocks.iter().zip(&parts.blocks) {
                assert_eq!(
                    (a.row_start, a.rows, a.values_size, a.scales, a.buffer.size()),
                    (b.row_start, b.rows, b.values_size, b.scales, b.buffer.size())
                );
            }
            let ids: Vec<u32> = (0..rows as u32).rev().collect();
            let ids_t = GpuTensor::from_u32(&c, &ids, &[rows], "ids").unwrap();
            let e = Guarded::new("rows written", &[rows, cols]);
            let mut rec = Recorder::new(&c, "rows written");
            ops::embedding(&mut rec, &ids_t, &parts, e.tensor()).unwrap();
            rec.submit();
            assert_close(
                &format!("written rows {dtype} {rows}x{cols}"),
                &e.read(),
                &cpu::embedding(&ids, &host).unwrap(),
                Tol::new(0.0, 0.0),
            );
        }
    }
}

#[test]
fn rows_that_are_not_whole_words_are_refused() {
    assert!(!GpuMatrix::rows_writable(33, DType::F16), "66-byte f16 rows");
    assert!(!GpuMatrix::rows_writable(32, DType::Q4G32), "2-byte scale rows");
    assert!(GpuMatrix::rows_writable(64, DType::Q4G32) && GpuMatrix::rows_writable(33, DType::F32));
    let m = GpuMatrix::allocate(ctx(), 4, 64, DType::Q8G32, "m").unwrap();
    let wrong = HostMatrix::from_f32(2, 64, &[0.0; 128], DType::F32).unwrap();
    let err = m.write_rows(ctx(), 0, &wrong).unwrap_err().to_string();
    assert!(err.contains("write_rows"), "{err}");
    let late = HostMatrix::from_f32(2, 64, &[0.0; 128], DType::Q8G32).unwrap();
    assert!(m.write_rows(ctx(), 3, &late).is_err(), "rows past the end");
}
