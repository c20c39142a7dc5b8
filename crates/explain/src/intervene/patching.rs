//! Activation patching: the corrupted input's run with one activation taken from the clean
//! input's run, and how much of the clean logit difference that restores,
//! `(LD_patched - LD_corrupted) / (LD_clean - LD_corrupted)` with `LD = logit(target) -
//! logit(contrast)` at the last position (1: the patched activation carries the whole
//! difference; 0: none of it).
//!
//! Two grids: the residual stream entering each layer at each chosen position, and each head's
//! output (z, before o_proj) at the last position. A cell changes only its position and the
//! positions after it from its layer on, so each cell's run starts at its layer and covers only
//! those positions, reading the earlier ones' keys and values from the corrupted run's cache;
//! the cells starting at one layer run together in batched passes (batched.rs).

use llava_lens_model::{Edits, RowSource};
use serde::{Deserialize, Serialize};

use super::{Intervener, Outcome, Targets};
use crate::ExplainError;

/// Which residual positions to patch, by name (the CLI's `--positions`, the page's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    All,
    Image,
    Text,
    Last,
}

impl Positions {
    pub const ALL: [Positions; 4] = [Positions::All, Positions::Image, Positions::Text, Positions::Last];

    pub fn name(self) -> &'static str {
        match self {
            Positions::All => "all",
            Positions::Image => "image",
            Positions::Text => "text",
            Positions::Last => "last",
        }
    }

    /// The positions of a sequence of `seq` with the image at `image` (offset, count).
    pub fn select(self, seq: usize, image: (usize, usize)) -> Vec<usize> {
        let in_image = |p: usize| (image.0..image.0 + image.1).contains(&p);
        (0..seq)
            .filter(|&p| match self {
                Positions::All => true,
                Positions::Image => in_image(p),
                Positions::Text => !in_image(p),
                Positions::Last => p + 1 == seq,
            })
            .collect()
    }
}

impl std::str::FromStr for Positions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Positions::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| format!("{s:?} is not all, image, text or last"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patching {
    pub target: u32,
    pub contrast: u32,
    pub clean: Outcome,
    pub corrupted: Outcome,
    /// The sequence positions of the residual grid's columns.
    pub positions: Vec<usize>,
    /// Recovered fraction per `[layer][position]` of `positions`.
    pub resid: Vec<Vec<f32>>,
    /// Recovered fraction per `[layer][head]`, each head's output patched at the last position.
    pub heads: Vec<Vec<f32>>,
    /// Where the image's positions are in the sequence (for per-layer patch maps).
    pub image_offset: usize,
    pub image_tokens: usize,
    /// Forward passes (whole or partial) the grids took.
    pub runs: usize,
}

impl Patching {
    /// Layer `layer`'s residual-grid row over the image patches (None where a patch's position
    /// was not patched).
    pub fn patch_map(&self, layer: usize) -> Vec<Option<f32>> {
        // One pass over the positions (a share link's may be long): the first cell of a patch wins.
        let mut cells = vec![None; self.image_tokens];
        for (i, &q) in self.positions.iter().enumerate() {
            if let Some(cell) = q.checked_sub(self.image_offset).and_then(|p| cells.get_mut(p)) {
                cell.get_or_insert(self.resid[layer][i]);
            }
        }
        cells
    }
}

/// Patches `clean`'s activations into `corrupted`'s run at `positions` (sequence positions;
/// every head at the last position besides). `targets.contrast` defaults to the corrupted
/// input's own answer.
pub async fn patch(
    clean: &mut Intervener<'_>,
    corrupted: &mut Intervener<'_>,
    positions: &[usize],
    target: Option<u32>,
    contrast: Option<u32>,
) -> Result<Patching, ExplainError> {
    if clean.seq != corrupted.seq || clean.prompt.image_offset != corrupted.prompt.image_offset {
        return Err(ExplainError::Input(format!(
            "activation patching pairs positions one to one: the clean input has {} positions (image at {:?}), the corrupted one {} (image at {:?}); give inputs of the same length",
            clean.seq, clean.prompt.image_offset, corrupted.seq, corrupted.prompt.image_offset
        )));
    }
    let seq = clean.seq;
    if let Some(&p) = positions.iter().find(|&&p| p >= seq) {
        return Err(ExplainError::Input(format!("position {p} is outside the sequence of {seq}")));
    }
    let targets = Targets { target: target.unwrap_or(clean.prediction()), contrast: Some(contrast.unwrap_or(corrupted.prediction())) };
    let contrast = targets.contrast.expect("set above");
    if targets.target == contrast {
        return Err(ExplainError::Input(format!(
            "the clean and corrupted inputs both answer token {contrast}: there is no logit difference to recover; choose a target and a contrast token"
        )));
    }
    let clean_out = clean.base_outcome(targets).await?;
    let corrupted_out = corrupted.base_outcome(targets).await?;
    let (ld_clean, ld_corrupted) = (clean_out.logit_diff.expect("contrast set"), corrupted_out.logit_diff.expect("contrast set"));
    let span = ld_clean - ld_corrupted;
    if span.abs() < 1e-6 {
        return Err(ExplainError::Input(format!("the logit difference is {ld_clean} on both inputs: nothing to recover")));
    }
    let t = &clean.model.config.text;
    let (layers, heads) = (t.num_hidden_layers, t.num_attention_heads);
    let runs_before = corrupted.runs;
    let recovered = |lp: &[f32]| (lp[0] - lp[1] - ld_corrupted) / span;
    // Every cell as (edits, first position run): the head cells, then the residual cells from
    // the last position backwards (shorter suffixes first, so a batched pass packs them densely).
    let mut cells = Vec::with_capacity(layers * (heads + positions.len()));
    for l in 0..layers {
        for h in 0..heads {
            cells.push(corrupted.head_edit(clean, l, h)?);
        }
    }
    let mut order: Vec<usize> = (0..positions.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(positions[i]));
    for &i in &order {
        for l in 0..layers {
            cells.push(corrupted.resid_edit(clean, l, positions[i])?);
        }
    }
    let lps = corrupted.run_many(&cells, targets).await?;
    let head_grid: Vec<Vec<f32>> = (0..layers).map(|l| (0..heads).map(|h| recovered(&lps[l * heads + h])).collect()).collect();
    let mut resid = vec![vec![0f32; positions.len()]; layers];
    for (j, &i) in order.iter().enumerate() {
        for (l, row) in resid.iter_mut().enumerate() {
            row[i] = recovered(&lps[layers * heads + j * layers + l]);
        }
    }
    let (image_offset, image_tokens) = clean.image_span();
    Ok(Patching {
        target: targets.target,
        contrast,
        clean: clean_out,
        corrupted: corrupted_out,
        positions: positions.to_vec(),
        resid,
        heads: head_grid,
        image_offset,
        image_tokens,
        runs: corrupted.runs - runs_before,
    })
}

impl Intervener<'_> {
    /// This run with the residual entering `layer` at `position` taken from `clean`'s run.
    pub async fn patch_resid(
        &mut self,
        clean: &Intervener<'_>,
        layer: usize,
        position: usize,
        targets: Targets,
    ) -> Result<Outcome, ExplainError> {
        let (edits, from) = self.resid_edit(clean, layer, position)?;
        self.run_from(&edits, from, None, targets).await
    }

    /// This run with head (`layer`, `head`)'s output at the last position taken from `clean`'s run.
    pub async fn patch_head(
        &mut self,
        clean: &Intervener<'_>,
        layer: usize,
        head: usize,
        targets: Targets,
    ) -> Result<Outcome, ExplainError> {
        let (edits, from) = self.head_edit(clean, layer, head)?;
        self.run_from(&edits, from, None, targets).await
    }

    fn resid_edit(&self, clean: &Intervener<'_>, layer: usize, position: usize) -> Result<(Edits, usize), ExplainError> {
        self.check_patch(clean, layer, position)?;
        let d = self.model.config.text.hidden_size;
        let mut edits = Edits::default();
        edits.resid_rows.insert(layer, vec![(position, RowSource { source: clean.base.resid[layer].clone(), at: position * d })]);
        Ok((edits, position))
    }

    fn head_edit(&self, clean: &Intervener<'_>, layer: usize, head: usize) -> Result<(Edits, usize), ExplainError> {
        let last = self.seq - 1;
        self.check_patch(clean, layer, last)?;
        let t = &self.model.config.text;
        if head >= t.num_attention_heads {
            return Err(ExplainError::Input(format!("head {layer}.{head} does not exist: layers have {} heads", t.num_attention_heads)));
        }
        let mut edits = Edits::default();
        edits.head_rows.insert(layer, vec![(last, head, RowSource { source: clean.base.z_last[layer].clone(), at: head * t.head_dim })]);
        Ok((edits, last))
    }

    fn check_patch(&self, clean: &Intervener<'_>, layer: usize, position: usize) -> Result<(), ExplainError> {
        let layers = self.model.config.text.num_hidden_layers;
        if clean.seq != self.seq {
            return Err(ExplainError::Input(format!("the clean input has {} positions, this one {}", clean.seq, self.seq)));
        }
        if layer >= layers {
            return Err(ExplainError::Input(format!("layer {layer} does not exist: the decoder's layers are 0..={}", layers - 1)));
        }
        if position >= self.seq {
            return Err(ExplainError::Input(format!("position {position} is outside the sequence of {}", self.seq)));
        }
        Ok(())
    }
}
