//! Batched suffix passes: several edited copies of one sequence, each differing from the base run
//! only from its own first position on, stacked into one decoder pass over the base run's KV cache
//! (activation patching's cells; docs/INTERVENTIONS.md, "Cost"). Every layer runs its matrices
//! once over all copies' rows; RoPE and attention take each copy's positions and keys
//! (`ops::Segments`). The base cache is only read, so copies never disturb each other or it.

use llava_lens_gpu::capture::CapturePlan;
use llava_lens_gpu::ops::{self, Segments};
use llava_lens_gpu::{GpuTensor, Recorder};
use llava_lens_tensor::cpu::{AttentionShape, RopeShape};

use crate::ModelError;
use crate::edits::{Edits, RowSpan};
use crate::llama::{KvCache, LayerCaptures, Llama};

impl Llama {
    /// Runs layers `first..` over `x` (`[segs.rows, hidden]`: each segment's residual entering
    /// layer `first` at its positions), segment `i` with `edits[i]` (rows and head values only:
    /// an ablation edits every position of a sequence and is not batched). Segments read the
    /// keys and values before their first position from `cache`, which is left unchanged.
    /// Returns the last layer's output, stacked as `x`.
    pub fn forward_segments(
        &self,
        rec: &mut Recorder<'_>,
        mut x: GpuTensor,
        first: usize,
        segs: &Segments,
        cache: &KvCache,
        edits: &[Edits],
    ) -> Result<GpuTensor, ModelError> {
        let c = &self.config;
        let bad = |m: String| Err(ModelError::Prompt(m));
        if edits.len() != segs.spans.len() || x.shape() != [segs.rows, c.hidden_size] {
            return bad(format!(
                "{} edits and a {:?} input for {} segments of {} rows",
                edits.len(),
                x.shape(),
                segs.spans.len(),
                segs.rows
            ));
        }
        if let Some(&(from, _)) = segs.spans.iter().find(|s| s.0 > cache.len) {
            return bad(format!("a segment from position {from} continues a cache of only {} positions", cache.len));
        }
        if let Some(e) = edits.iter().find(|e| !e.head_blend.is_empty() || e.first_layer().is_some_and(|l| l < first)) {
            return bad(format!("a batched pass from layer {first} takes row edits at its layers only ({e:?})"));
        }
        let spans: Vec<RowSpan> =
            segs.spans.iter().enumerate().map(|(i, &(from, rows))| RowSpan { from, row: segs.first_row(i), rows }).collect();
        let (rows, hd) = (segs.rows, c.head_dim);
        let (heads, kv_heads) = (c.num_attention_heads, c.num_key_value_heads);
        let rope = |n_heads: usize| RopeShape {
            n_rows: rows,
            n_heads,
            head_dim: hd,
            row_stride: n_heads * hd,
            col_offset: 0,
            pos_offset: 0,
            theta: c.rope_theta,
        };
        // n_keys is unused by the segments' attention (each row has its own keys).
        let shape = AttentionShape::packed(rows, rows, heads, kv_heads, hd, true);
        for (n, layer) in self.layers.iter().enumerate().skip(first) {
            for (e, &span) in edits.iter().zip(&spans) {
                e.apply_resid_in(rec, n, &x, span)?;
            }
            let (q, k, v) = layer.project_qkv(rec, &x)?;
            ops::rope_rows(rec, &q, rope(heads), segs)?;
            ops::rope_rows(rec, &k, rope(kv_heads), segs)?;
            let z = GpuTensor::zeros(rec.ctx(), &[rows, heads * hd], "attention z");
            ops::attention_segments(rec, &q, &cache.keys[n], &cache.values[n], &k, &v, &z, &shape, segs)?;
            for (e, &span) in edits.iter().zip(&spans) {
                e.apply_head_rows_in(rec, n, &z, span, hd)?;
            }
            x = layer.after_attention(rec, x, &z, n, c, &CapturePlan::new(), &mut LayerCaptures::default())?;
            // Bounds the temporaries alive at once, as a long prefill does.
            rec.flush();
        }
        Ok(x)
    }
}
