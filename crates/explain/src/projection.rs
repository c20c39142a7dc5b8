//! Reading vectors through the model's unembedding on the GPU, as the method does: the final
//! norm with its scale frozen at the last layer's output (the authors' z(.)), lm_head, and either
//! the log-probabilities of the target tokens or the top tokens. Only small results come back.

use llava_lens_gpu::{GpuContext, GpuTensor, ReadBack, Recorder, ops, read_f32};
use llava_lens_model::Llava;

use crate::ExplainError;
use crate::method::PROJECTION_EPS;

/// Reads results back and counts the bytes (the explanation reports them).
pub(crate) struct Reader<'a> {
    pub ctx: &'a GpuContext,
    pub bytes: u64,
}

impl Reader<'_> {
    pub async fn f32(&mut self, t: &GpuTensor) -> Result<Vec<f32>, ExplainError> {
        self.bytes += t.size_bytes();
        Ok(read_f32(self.ctx, t).await?)
    }

    /// Submits `rec` with copies of `tensors` at its end and waits once for all of them (a
    /// stage's results come back with its own submission, not one round trip each).
    pub async fn submit(&mut self, rec: Recorder<'_>, tensors: &[&GpuTensor]) -> Result<ReadBack, ExplainError> {
        let parts = rec.submit_and_read(tensors).await?;
        self.bytes += parts.bytes();
        Ok(parts)
    }
}

/// The authors' z(v) for every row of `rows [n, d]`: the final norm with its scale frozen at
/// `final_resid`, then lm_head; logits `[n, vocab]` (recorded).
pub(crate) fn z_logits(
    model: &Llava,
    rec: &mut Recorder<'_>,
    rows: &GpuTensor,
    final_resid: &GpuTensor,
) -> Result<GpuTensor, ExplainError> {
    let lm = &model.language_model;
    let scaled = GpuTensor::zeros(rec.ctx(), rows.shape(), "z(v) input");
    ops::fixed_rms_norm(rec, rows, &lm.norm.weight, final_resid, &scaled, PROJECTION_EPS)?;
    Ok(lm.lm_head.forward(rec, &scaled)?)
}

/// The log-probabilities of `targets` for every row of `rows [n, d]` under z(.):
/// `[n, targets.len()]` (recorded, not yet read).
pub(crate) fn project(
    model: &Llava,
    rec: &mut Recorder<'_>,
    rows: &GpuTensor,
    final_resid: &GpuTensor,
    targets: &[u32],
) -> Result<GpuTensor, ExplainError> {
    let ctx = rec.ctx();
    let n = rows.shape()[0];
    let logits = z_logits(model, rec, rows, final_resid)?;
    let idx: Vec<u32> = (0..n).flat_map(|_| targets.iter().copied()).collect();
    let idx_t = GpuTensor::from_u32(ctx, &idx, &[n, targets.len()], "targets")?;
    let lp = GpuTensor::zeros(ctx, &[n, targets.len()], "log-probs");
    ops::log_softmax_gather(rec, &logits, model.language_model.config.vocab_size, &idx_t, &lp)?;
    Ok(lp)
}

/// Ids of the top `k` tokens of each row of `logits [n, vocab]` (recorded).
pub(crate) fn top_ids(rec: &mut Recorder<'_>, logits: &GpuTensor, vocab: usize, k: usize) -> Result<GpuTensor, ExplainError> {
    let n = logits.len() / vocab;
    let (vals, ids) = (GpuTensor::zeros(rec.ctx(), &[n, k], "top values"), GpuTensor::zeros(rec.ctx(), &[n, k], "top ids"));
    ops::top_k(rec, logits, vocab, k, &vals, &ids)?;
    Ok(ids)
}

/// The score each row of projected log-probabilities stands for: log p(target) or, with a
/// contrast, log p(target) - log p(contrast) (the logit difference).
pub(crate) fn row_scores(lp: &[f32], contrast: bool) -> Vec<f32> {
    if contrast { lp.chunks_exact(2).map(|p| p[0] - p[1]).collect() } else { lp.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contrast_scores_the_difference_target_minus_contrast() {
        assert_eq!(row_scores(&[-1.0, -3.0, -0.5, -0.25], true), vec![2.0, -0.25]);
        assert_eq!(row_scores(&[-1.0, -3.0], false), vec![-1.0, -3.0]);
    }
}
