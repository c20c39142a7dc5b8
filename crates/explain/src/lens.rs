//! Two readings of the residual stream beside the scores (docs/METHOD.md): the logit lens of
//! the image positions, and the key-input / value-input decomposition at chosen positions.

use llava_lens_gpu::capture::{Hook, HookPoint};
use llava_lens_gpu::{GpuTensor, Recorder, ops};

use crate::ExplainError;
use crate::engine::{Engine, Forward};
use crate::explanation::{Decomposition, LogitLens};
use crate::projection::{top_ids, z_logits};

impl Engine<'_> {
    /// Step 5a: the top tokens of every image patch, from the projector output through the input
    /// embedding matrix, and from the residual entering `lens_layer` through z(.). None when the
    /// lens is off (k = 0).
    pub(crate) async fn logit_lens(&mut self, fwd: &Forward) -> Result<Option<LogitLens>, ExplainError> {
        let k = self.opts.lens_k;
        if k == 0 || self.dims.image_tokens == 0 {
            return Ok(None); // off, or a text-only prompt (no image positions to read)
        }
        let (model, ctx) = (self.model, self.ctx);
        let (n, vocab) = (self.dims.image_tokens, self.dims.vocab);
        let lm = &model.language_model;
        let mut rec = Recorder::new(ctx, "explain: logit lens");
        let emb_logits = GpuTensor::zeros(ctx, &[n, vocab], "embedding lens logits");
        let features =
            fwd.pre.image_features.as_ref().ok_or_else(|| ExplainError::Input("the forward pass kept no image features".into()))?;
        ops::matmul(&mut rec, features, &lm.embed_tokens, &emb_logits)?;
        let emb_ids = top_ids(&mut rec, &emb_logits, vocab, k)?;
        // The residual lens needs its layer planned before the forward pass (`lens_layer`).
        let resid_ids = match &fwd.lens_rows {
            Some(x) => {
                let logits = z_logits(model, &mut rec, x, &fwd.resid_final)?;
                Some(top_ids(&mut rec, &logits, vocab, k)?)
            }
            None => None,
        };
        let parts = match &resid_ids {
            Some(t) => self.reader.submit(rec, &[&emb_ids, t]).await?,
            None => self.reader.submit(rec, &[&emb_ids]).await?,
        };
        let rows = |ids: Vec<u32>| ids.chunks(k).map(|c| c.to_vec()).collect::<Vec<_>>();
        let embedding = rows(parts.u32(0));
        let residual = resid_ids.map(|_| rows(parts.u32(1)));
        Ok(Some(LogitLens { k, embedding, residual_layer: self.opts.lens_layer, residual }))
    }

    /// Step 5b: the residual entering `decompose_layer` at each chosen position, split into the
    /// sum of earlier attention outputs (key input) and of earlier MLP outputs (value input), each
    /// projected with z(.); the top tokens of both. Empty when no position is chosen.
    pub(crate) async fn decompose(&mut self, fwd: &Forward) -> Result<Vec<Decomposition>, ExplainError> {
        let layer = self.opts.decompose_layer.unwrap_or(self.dims.layers);
        if self.opts.decompose.is_empty() || layer == 0 {
            return Ok(Vec::new());
        }
        let (model, ctx) = (self.model, self.ctx);
        let (d, vocab, k) = (self.dims.hidden, self.dims.vocab, self.opts.lens_k.max(1));
        // Capture rows are the sorted, de-duplicated positions.
        let mut rows = self.opts.decompose.clone();
        rows.sort_unstable();
        rows.dedup();
        let n = rows.len();
        let mut rec = Recorder::new(ctx, "explain: decomposition");
        let sums = GpuTensor::zeros(ctx, &[2 * n, d], "key | value inputs");
        let (keys, values) = (GpuTensor::zeros(ctx, &[n, d], "key input"), GpuTensor::zeros(ctx, &[n, d], "value input"));
        for l in 0..layer {
            for (point, acc) in [(HookPoint::AttnOut, &keys), (HookPoint::MlpOut, &values)] {
                ops::residual_add(&mut rec, acc, &fwd.pre.captures.row(Hook { layer: l, point })?.values)?;
            }
        }
        rec.copy_rows(&keys, 0, &sums, 0, n)?;
        rec.copy_rows(&values, 0, &sums, n, n)?;
        let logits = z_logits(model, &mut rec, &sums, &fwd.resid_final)?;
        let ids = top_ids(&mut rec, &logits, vocab, k)?;
        let ids = self.reader.submit(rec, &[&ids]).await?.u32(0);
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, &position)| Decomposition {
                position,
                layer,
                key_input_top: ids[i * k..(i + 1) * k].to_vec(),
                value_input_top: ids[(n + i) * k..(n + i + 1) * k].to_vec(),
            })
            .collect())
    }
}
