use llava_lens_gpu::{GpuTensor, Recorder, ops};
use llava_lens_tensor::{Rng, cpu};
use llava_lens_tests::{Guarded, Tol, assert_close, ctx, upload};

#[test]
fn top_k_and_argmax_match_cpu() {
    for (i, &(rows, n, k)) in [(1usize, 1usize, 1usize), (3, 7, 7), (2, 1031, 5), (1, 32064, 10)].iter().enumerate() {
        let mut x = Rng::new(i as u64).normal(rows * n, 3.0);
        if n > 8 {
            // Ties: the lower index must come first.
            x[5] = 100.0;
            x[2] = 100.0;
        }
        let vals = Guarded::new("top_k values", &[rows, k]);
        let idx = Guarded::new("top_k indices", &[rows, k]);
        let mut rec = Recorder::new(ctx(), "top_k");
        ops::top_k(&mut rec, &upload(&x, &[rows, n]), n, k, vals.tensor(), idx.tensor()).unwrap();
        rec.submit();
        let (want_idx, want_vals) = cpu::top_k(&x, n, k);
        assert_eq!(idx.read_u32(), want_idx, "top_k indices {rows}x{n} k={k}");
        assert_close("top_k values", &vals.read(), &want_vals, Tol::new(0.0, 0.0));

        let amax = Guarded::new("argmax", &[rows]);
        let amax_v = Guarded::new("argmax values", &[rows]);
        let mut rec = Recorder::new(ctx(), "argmax");
        ops::argmax(&mut rec, &upload(&x, &[rows, n]), n, amax_v.tensor(), amax.tensor()).unwrap();
        rec.submit();
        assert_eq!(amax.read_u32(), cpu::argmax(&x, n), "argmax {rows}x{n}");
    }
}

#[test]
fn log_softmax_gather_matches_cpu() {
    // Up to the full Llava vocabulary, several target tokens per row.
    for (i, &(rows, n, m)) in [(1usize, 1usize, 1usize), (5, 7, 3), (3, 1031, 2), (2, 32064, 4)].iter().enumerate() {
        let mut rng = Rng::new(40 + i as u64);
        let x = rng.normal(rows * n, 4.0);
        let idx: Vec<u32> = (0..rows * m).map(|_| rng.below(n as u64) as u32).collect();
        let out = Guarded::new("log_softmax_gather", &[rows, m]);
        let mut rec = Recorder::new(ctx(), "log_softmax_gather");
        let idx_t = GpuTensor::from_u32(ctx(), &idx, &[rows, m], "targets").unwrap();
        ops::log_softmax_gather(&mut rec, &upload(&x, &[rows, n]), n, &idx_t, out.tensor()).unwrap();
        rec.submit();
        assert_close(
            &format!("log_softmax_gather {rows}x{n}"),
            &out.read(),
            &cpu::log_softmax_gather(&x, n, &idx, m),
            Tol::new(2e-5, 1e-5),
        );
    }
}

#[test]
fn token_rank_matches_cpu() {
    // Up to the full Llava vocabulary; ties (equal logits share the better rank) and an index
    // past the row's end (u32::MAX, not another row's value) in the mix.
    for (i, &(rows, n, m)) in [(1usize, 1usize, 1usize), (5, 7, 3), (3, 1031, 2), (2, 32064, 4)].iter().enumerate() {
        let mut rng = Rng::new(70 + i as u64);
        let mut x = rng.normal(rows * n, 4.0);
        let mut idx: Vec<u32> = (0..rows * m).map(|_| rng.below(n as u64) as u32).collect();
        if n > 8 {
            x[3] = x[6]; // a tie with the token at 6
            idx[0] = 6;
            idx[1] = n as u32; // outside the row
        }
        let out = Guarded::new("token_rank", &[rows, m]);
        let mut rec = Recorder::new(ctx(), "token_rank");
        let idx_t = GpuTensor::from_u32(ctx(), &idx, &[rows, m], "tokens").unwrap();
        ops::token_rank(&mut rec, &upload(&x, &[rows, n]), n, &idx_t, out.tensor()).unwrap();
        rec.submit();
        assert_eq!(out.read_u32(), cpu::token_rank(&x, n, &idx, m), "token_rank {rows}x{n}, {m} tokens per row");
    }
}
