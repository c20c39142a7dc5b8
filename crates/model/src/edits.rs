//! Interventions on one decoder pass, applied where TransformerLens hooks would apply them: the
//! residual stream entering a layer (`blocks.l.hook_resid_pre`) and the per-head attention outputs
//! before o_proj (`blocks.l.attn.hook_z`). Everything is recorded into the same command stream as
//! the pass; nothing is read back. Captures of a layer's residual see the edited rows; the
//! attention capture (pattern, z) is written by the attention kernel before any head edit.

use std::collections::BTreeMap;

use llava_lens_gpu::{GpuTensor, Recorder, ops};

use crate::ModelError;

/// A row of values to write, `len` elements from element `at` of `source` (a slice of another
/// run's capture, so that patching many cells reads one buffer instead of uploading each).
#[derive(Debug, Clone)]
pub struct RowSource {
    pub source: GpuTensor,
    pub at: usize,
}

/// Every edit of one pass, by layer.
#[derive(Debug, Default, Clone)]
pub struct Edits {
    /// Per layer: keep-then-fill (`[2 * heads * head_dim]`) blended into every row of z: heads
    /// whose columns have keep 0 are replaced by their fill (zero or mean ablation).
    pub head_blend: BTreeMap<usize, GpuTensor>,
    /// Per layer: `(position, head, values [head_dim])` written into z at that position.
    pub head_rows: BTreeMap<usize, Vec<(usize, usize, RowSource)>>,
    /// Per layer: `(position, values [hidden])` written into the residual entering the layer.
    pub resid_rows: BTreeMap<usize, Vec<(usize, RowSource)>>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.head_blend.is_empty() && self.head_rows.is_empty() && self.resid_rows.is_empty()
    }

    /// The first layer any edit touches (a pass may start there from the unedited residual).
    pub fn first_layer(&self) -> Option<usize> {
        [self.head_blend.keys().next(), self.head_rows.keys().next(), self.resid_rows.keys().next()].into_iter().flatten().min().copied()
    }

    /// Writes layer `layer`'s residual rows into `x`, whose rows are positions `start..`.
    pub(crate) fn apply_resid(&self, rec: &mut Recorder<'_>, layer: usize, x: &GpuTensor, start: usize) -> Result<(), ModelError> {
        self.apply_resid_in(rec, layer, x, RowSpan::whole(x, start))
    }

    /// [`Edits::apply_resid`] on the rows of `x` that `span` covers.
    pub(crate) fn apply_resid_in(&self, rec: &mut Recorder<'_>, layer: usize, x: &GpuTensor, span: RowSpan) -> Result<(), ModelError> {
        let d = x.shape()[1];
        for (pos, src) in self.resid_rows.get(&layer).into_iter().flatten() {
            let row = span.row_of(*pos, layer, "residual")?;
            rec.copy_elements(&src.source, src.at, x, row * d, d)?;
        }
        Ok(())
    }

    /// Blends and writes layer `layer`'s head edits into z (`[rows, heads * head_dim]`, rows are
    /// positions `start..`).
    pub(crate) fn apply_heads(
        &self,
        rec: &mut Recorder<'_>,
        layer: usize,
        z: &GpuTensor,
        start: usize,
        head_dim: usize,
    ) -> Result<(), ModelError> {
        if let Some(blend) = self.head_blend.get(&layer) {
            ops::blend_columns(rec, z, blend)?;
        }
        self.apply_head_rows_in(rec, layer, z, RowSpan::whole(z, start), head_dim)
    }

    /// Writes layer `layer`'s per-position head values into the rows of z that `span` covers.
    pub(crate) fn apply_head_rows_in(
        &self,
        rec: &mut Recorder<'_>,
        layer: usize,
        z: &GpuTensor,
        span: RowSpan,
        head_dim: usize,
    ) -> Result<(), ModelError> {
        let width = z.shape()[1];
        for (pos, head, src) in self.head_rows.get(&layer).into_iter().flatten() {
            let row = span.row_of(*pos, layer, "head output")?;
            if (head + 1) * head_dim > width {
                return Err(ModelError::Prompt(format!("head {layer}.{head} does not exist ({} heads)", width / head_dim)));
            }
            rec.copy_elements(&src.source, src.at, z, row * width + head * head_dim, head_dim)?;
        }
        Ok(())
    }
}

/// Where a pass's positions sit in its tensors: rows `row..row + rows` are positions
/// `from..from + rows` (a whole pass: `row` 0; a segment of a batched pass: its own rows).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowSpan {
    pub from: usize,
    pub row: usize,
    pub rows: usize,
}

impl RowSpan {
    fn whole(x: &GpuTensor, from: usize) -> RowSpan {
        RowSpan { from, row: 0, rows: x.shape()[0] }
    }

    /// The row of position `pos`, or an error naming the edit.
    fn row_of(self, pos: usize, layer: usize, what: &str) -> Result<usize, ModelError> {
        pos.checked_sub(self.from).filter(|&r| r < self.rows).map(|r| self.row + r).ok_or_else(|| {
            ModelError::Prompt(format!(
                "the {what} edit at layer {layer}, position {pos}, is outside this pass (positions {}..{})",
                self.from,
                self.from + self.rows
            ))
        })
    }
}
