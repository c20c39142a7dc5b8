/// Geometry of one attention call. Q rows are `[n_queries, q_stride]` with head `h` at columns
/// `q_offset + h*head_dim`; K and V rows likewise with their own stride and offset and
/// `n_kv_heads` heads (grouped-query attention when fewer than `n_heads`: query head `h` reads
/// kv head `h / (n_heads / n_kv_heads)`, as HF `repeat_kv`). The output is `[n_queries,
/// n_heads*head_dim]`. Keys are positions `0..n_keys`; query `i` sits at position
/// `n_keys - n_queries + i`, so prefill (`n_queries == n_keys`) and decode against a KV cache
/// (`n_queries == 1`) are the same call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    pub n_queries: usize,
    pub n_keys: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub q_stride: usize,
    pub q_offset: usize,
    pub k_stride: usize,
    pub k_offset: usize,
    pub v_stride: usize,
    pub v_offset: usize,
    /// LLaMA masks the future; CLIP's vision encoder does not.
    pub causal: bool,
    /// Usually `1/sqrt(head_dim)`.
    pub scale: f32,
}

impl AttentionShape {
    /// Packed layout: separate Q, K, V tensors of `heads*head_dim` columns each.
    pub fn packed(n_queries: usize, n_keys: usize, n_heads: usize, n_kv_heads: usize, head_dim: usize, causal: bool) -> Self {
        AttentionShape {
            n_queries,
            n_keys,
            n_heads,
            n_kv_heads,
            head_dim,
            q_stride: n_heads * head_dim,
            q_offset: 0,
            k_stride: n_kv_heads * head_dim,
            k_offset: 0,
            v_stride: n_kv_heads * head_dim,
            v_offset: 0,
            causal,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }

    /// Position of query row `i` among the keys.
    pub fn query_pos(&self, i: usize) -> usize {
        self.n_keys - self.n_queries + i
    }

    /// Number of keys query `i` may see.
    pub fn visible_keys(&self, i: usize) -> usize {
        if self.causal { self.query_pos(i) + 1 } else { self.n_keys }
    }
}

/// HF eager attention (`LlamaAttention` / `CLIPAttention`): `softmax(Q K^T * scale + mask) V`,
/// softmax in f32 with max subtraction. Returns the output `[n_queries, n_heads*head_dim]` and
/// the probabilities `[n_heads, n_queries, n_keys]` (masked entries exactly 0).
pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) -> (Vec<f32>, Vec<f32>) {
    attention_masked(q, k, v, s, &[], usize::MAX)
}

/// [`attention`] where queries at positions `>= mask_from` may not attend to keys with
/// `blocked[j]` (attention knockout; their probability is exactly 0).
pub fn attention_masked(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, blocked: &[bool], mask_from: usize) -> (Vec<f32>, Vec<f32>) {
    let (hd, group) = (s.head_dim, s.n_heads / s.n_kv_heads);
    let mut out = vec![0.0f32; s.n_queries * s.n_heads * hd];
    let mut probs = vec![0.0f32; s.n_heads * s.n_queries * s.n_keys];
    for h in 0..s.n_heads {
        let kvh = h / group;
        for i in 0..s.n_queries {
            let qr = &q[i * s.q_stride + s.q_offset + h * hd..][..hd];
            let visible = s.visible_keys(i);
            let masking = s.query_pos(i) >= mask_from;
            let scores: Vec<f32> = (0..visible)
                .map(|j| {
                    if masking && blocked[j] {
                        return f32::NEG_INFINITY;
                    }
                    let kr = &k[j * s.k_stride + s.k_offset + kvh * hd..][..hd];
                    qr.iter().zip(kr).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32 * s.scale
                })
                .collect();
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let exps: Vec<f64> = scores.iter().map(|&x| ((x - max) as f64).exp()).collect();
            let sum: f64 = exps.iter().sum();
            let p = &mut probs[(h * s.n_queries + i) * s.n_keys..][..s.n_keys];
            for (j, e) in exps.iter().enumerate() {
                p[j] = (e / sum) as f32;
            }
            let o = &mut out[i * s.n_heads * hd + h * hd..][..hd];
            for (d, od) in o.iter_mut().enumerate() {
                *od = (0..visible).map(|j| p[j] as f64 * v[j * s.v_stride + s.v_offset + kvh * hd + d] as f64).sum::<f64>() as f32;
            }
        }
    }
    (out, probs)
}

/// Queries that continue a shared prefix, each group with keys of its own: the batched passes
/// of activation patching, where every patched copy of the sequence reads the same earlier
/// positions from one KV cache. Segment `(from, rows)` owns the next `rows` rows of `q`,
/// `k_own` and `v_own` (positions `from..from + rows`); its row `i` attends causally to the
/// cache's keys `0..from` and to its own rows `0..=i`. Strides and offsets are `s`'s for both
/// the cache and the own keys and values; `s.n_queries` is the total of the segments' rows.
pub fn attention_segments(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    k_own: &[f32],
    v_own: &[f32],
    s: AttentionShape,
    segments: &[(usize, usize)],
) -> Vec<f32> {
    let hd = s.head_dim;
    let width = s.n_heads * hd;
    let mut out = vec![0.0f32; s.n_queries * width];
    let mut row = 0;
    for &(prefix, rows) in segments {
        // The segment's keys laid end to end: the cache's prefix, then its own rows.
        let gather = |cache: &[f32], own: &[f32], stride: usize| -> Vec<f32> {
            let mut keys = cache[..prefix * stride].to_vec();
            keys.extend_from_slice(&own[row * stride..(row + rows) * stride]);
            keys
        };
        let (k, v) = (gather(k_cache, k_own, s.k_stride), gather(v_cache, v_own, s.v_stride));
        let shape = AttentionShape { n_queries: rows, n_keys: prefix + rows, causal: true, ..s };
        let (o, _) = attention(&q[row * s.q_stride..(row + rows) * s.q_stride], &k, &v, shape);
        out[row * width..(row + rows) * width].copy_from_slice(&o);
        row += rows;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_over_a_prefix_equals_the_whole_sequence_s_last_rows() {
        // 5 positions; a segment continuing the first 3 from the cache equals rows 3..5 of the
        // whole causal pass; a segment of one row continuing 4 equals row 4.
        let (heads, kv, hd) = (2, 1, 3);
        let s = AttentionShape::packed(5, 5, heads, kv, hd, true);
        let q: Vec<f32> = (0..5 * heads * hd).map(|i| (i as f32 * 0.37).sin()).collect();
        let k: Vec<f32> = (0..5 * kv * hd).map(|i| (i as f32 * 0.91).cos()).collect();
        let v: Vec<f32> = (0..5 * kv * hd).map(|i| i as f32 * 0.1).collect();
        let (whole, _) = attention(&q, &k, &v, s);
        let w = heads * hd;
        let own = |m: &[f32], rows: std::ops::Range<usize>| -> Vec<f32> { m[rows.start * kv * hd..rows.end * kv * hd].to_vec() };
        let (mut k_own, mut v_own) = (own(&k, 3..5), own(&v, 3..5));
        k_own.extend(own(&k, 4..5));
        v_own.extend(own(&v, 4..5));
        let mut q_seg = q[3 * w..5 * w].to_vec();
        q_seg.extend_from_slice(&q[4 * w..5 * w]);
        let shape = AttentionShape { n_queries: 3, ..s };
        let out = attention_segments(&q_seg, &k, &v, &k_own, &v_own, shape, &[(3, 2), (4, 1)]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&out[..2 * w], &whole[3 * w..5 * w]) && close(&out[2 * w..], &whole[4 * w..]), "{out:?} vs {whole:?}");
    }

    #[test]
    fn one_key_copies_its_value_and_rows_sum_to_one() {
        let s = AttentionShape::packed(1, 1, 1, 1, 2, true);
        let (o, p) = attention(&[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0], s);
        assert_eq!((o, p), (vec![5.0, 6.0], vec![1.0]));
        let s = AttentionShape::packed(3, 3, 2, 1, 2, true);
        let q: Vec<f32> = (0..12).map(|i| i as f32 * 0.1).collect();
        let k: Vec<f32> = (0..6).map(|i| (i as f32).sin()).collect();
        let (_, p) = attention(&q, &k, &k, s);
        for row in p.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert_eq!(p[1], 0.0, "query 0 must not see key 1");
    }
}
