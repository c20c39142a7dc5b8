//! Many edited runs of one input at once (activation patching's grids). Runs whose edits are
//! rows of the residual or of head outputs (patching) go through batched suffix passes: the runs
//! that start at the same layer are stacked, each as the positions from its own first one, and
//! every layer runs once over all of them against the base run's KV cache
//! (`Llama::forward_segments`). Other runs (ablations, which edit every position) are recorded
//! one after another. Either way the results come back a batch at a time.

use llava_lens_gpu::ops::Segments;
use llava_lens_gpu::{GpuTensor, Recorder, read_f32};
use llava_lens_model::Edits;

use super::{Intervener, Targets};
use crate::ExplainError;

/// Runs per readback, and rows per batched pass (the default of `Intervener::rows_per_pass`):
/// bound the temporaries alive at once (at Llava-7B shapes 2048 rows hold about 0.5 GB of
/// activations per layer, computed).
const RUNS_PER_BATCH: usize = 64;
pub(crate) const ROWS_PER_PASS: usize = 2048;

impl Intervener<'_> {
    /// The targets' log-probabilities of each run `(edits, from)` (its edits touch positions
    /// `from..` only), in order.
    pub(crate) async fn run_many(&mut self, runs: &[(Edits, usize)], targets: Targets) -> Result<Vec<Vec<f32>>, ExplainError> {
        self.check_targets(targets)?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; runs.len()];
        // Batchable runs grouped by their first layer, in the order given.
        let mut by_layer = std::collections::BTreeMap::<usize, Vec<usize>>::new();
        let mut one_by_one = Vec::new();
        for (i, (edits, _)) in runs.iter().enumerate() {
            match edits.first_layer() {
                Some(layer) if edits.head_blend.is_empty() => by_layer.entry(layer).or_default().push(i),
                _ => one_by_one.push(i),
            }
        }
        for (first, group) in by_layer {
            let mut rest = &group[..];
            while !rest.is_empty() {
                // As many runs as fit the row budget (at least one).
                let mut rows = 0;
                let take = rest
                    .iter()
                    .take(RUNS_PER_BATCH)
                    .take_while(|&&i| {
                        rows += self.seq - runs[i].1;
                        rows <= self.rows_per_pass
                    })
                    .count()
                    .max(1);
                let (batch, next) = rest.split_at(take);
                let lps = self.run_segments(first, batch.iter().map(|&i| &runs[i]), targets).await?;
                for (&i, lp) in batch.iter().zip(lps) {
                    out[i] = Some(lp);
                }
                rest = next;
            }
        }
        for chunk in one_by_one.chunks(RUNS_PER_BATCH) {
            let lps = self.run_recorded(chunk.iter().map(|&i| &runs[i]), targets).await?;
            for (&i, lp) in chunk.iter().zip(lps) {
                out[i] = Some(lp);
            }
        }
        let out: Vec<Vec<f32>> = out.into_iter().map(|o| o.expect("every run is in one group")).collect();
        if let Some(bad) = out.iter().flatten().find(|v| !v.is_finite()) {
            return Err(llava_lens_model::ModelError::non_finite("an edited run", format!("a log-probability is {bad}")).into());
        }
        Ok(out)
    }

    /// One batched pass from layer `first` over `runs` (each editing rows at `first` or later).
    async fn run_segments<'r>(
        &mut self,
        first: usize,
        runs: impl Iterator<Item = &'r (Edits, usize)>,
        targets: Targets,
    ) -> Result<Vec<Vec<f32>>, ExplainError> {
        let (ctx, seq) = (self.ctx, self.seq);
        let (edits, spans): (Vec<Edits>, Vec<(usize, usize)>) = runs.map(|(e, from)| (e.clone(), (*from, seq - from))).unzip();
        // Each segment reads the base run's keys and values before its first position.
        if spans.iter().any(|s| s.0 > self.base.clean_before) {
            self.rebuild().await?;
        }
        let segs = Segments::new(ctx, &spans)?;
        let d = self.model.config.text.hidden_size;
        let mut rec = Recorder::new(ctx, "interventions: batched runs");
        let x = GpuTensor::zeros(ctx, &[segs.rows, d], "stacked residual");
        let mut last_rows = Vec::with_capacity(spans.len());
        for (i, &(from, rows)) in spans.iter().enumerate() {
            let row = segs.first_row(i);
            rec.copy_rows(&self.base.resid[first], from, &x, row, rows)?;
            last_rows.push(row + rows - 1);
        }
        let h = self.model.language_model.forward_segments(&mut rec, x, first, &segs, &self.base.cache, &edits)?;
        let ids = targets.ids();
        let lp = self.model.target_log_probs_rows(&mut rec, &h, &last_rows, &ids)?;
        rec.submit();
        self.runs += 1;
        Ok(read_f32(ctx, &lp).await?.chunks_exact(ids.len()).map(<[f32]>::to_vec).collect())
    }

    /// Runs recorded one after another (each over the base cache from its `from`), read back
    /// together; a run that needs cache rows an earlier one overwrote re-runs the base pass first.
    async fn run_recorded<'r>(
        &mut self,
        runs: impl Iterator<Item = &'r (Edits, usize)>,
        targets: Targets,
    ) -> Result<Vec<Vec<f32>>, ExplainError> {
        let ids = targets.ids();
        let n = ids.len();
        let runs: Vec<&(Edits, usize)> = runs.collect();
        let mut out = Vec::with_capacity(runs.len());
        let mut i = 0;
        while i < runs.len() {
            if runs[i].1 > self.base.clean_before {
                self.rebuild().await?;
            }
            let mut rec = Recorder::new(self.ctx, "interventions: edited runs");
            let results = GpuTensor::zeros(self.ctx, &[runs.len() * n], "edited runs' log-probabilities");
            let mut k = 0;
            while i < runs.len() && runs[i].1 <= self.base.clean_before {
                let (edits, from) = runs[i];
                let (h, row) = self.record(&mut rec, edits, *from, None)?;
                let lp = self.model.target_log_probs(&mut rec, &h, row, &ids)?;
                rec.copy_elements(&lp, 0, &results, k * n, n)?;
                i += 1;
                k += 1;
            }
            rec.submit();
            let v = read_f32(self.ctx, &results).await?;
            out.extend(v.chunks_exact(n).take(k).map(<[f32]>::to_vec));
        }
        Ok(out)
    }
}
