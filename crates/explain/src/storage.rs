//! The paper's "information storage" reading (docs/METHOD.md, "Information storage"): at the top
//! positions of the best heads, where chosen words rank when two vectors are read through the
//! unembedding z(.): the position's value-output vector `u_j = alpha_j v_j W_O^h` (what the head
//! moves: the paper finds the answer's colour there) and the residual entering the head's layer
//! `x^l_j` (what the position holds: the paper finds the object there). The caller picks the
//! words: a correct one and a random one of the same kind, so a rank is read against chance.

use llava_lens_gpu::capture::Hook;
use llava_lens_gpu::{GpuTensor, Recorder, ops};

use crate::ExplainError;
use crate::engine::{Engine, Forward};
use crate::explanation::{HeadScore, Storage, StorageHead};
use crate::method::rank_desc;
use crate::projection::z_logits;

/// What the storage step reads.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageProbe {
    /// How many of the best heads, best first.
    pub heads: usize,
    /// How many of each head's top positions (by its position score); the paper reads 20.
    pub positions: usize,
    /// Tokens ranked in each position's value-output vector (the paper: the correct colour, a
    /// random colour).
    pub value_tokens: Vec<u32>,
    /// Tokens ranked in each position's layer input (the paper: the correct object, a random one).
    pub input_tokens: Vec<u32>,
}

impl Engine<'_> {
    /// Step 5c: for each of the probe's heads, its top positions and the ranks (1 = top) of the
    /// probe's tokens in z(u_j) and z(x^l_j) at each. `mapped` are the position scores step 4
    /// computed (reused); other heads are scored here. Only the ranks come back.
    pub(crate) async fn storage(
        &mut self,
        fwd: &Forward,
        ranked: &[HeadScore],
        mapped: &[(HeadScore, &[f32])],
        entering: &[f32],
    ) -> Result<Option<Storage>, ExplainError> {
        let Some(probe) = self.opts.storage.clone() else { return Ok(None) };
        let mut heads = Vec::new();
        for &head in ranked.iter().take(probe.heads) {
            let scores = match mapped.iter().find(|(h, _)| (h.layer, h.head) == (head.layer, head.head)) {
                Some((_, s)) => s.to_vec(),
                None => self.position_scores(fwd, head.layer, head.head, entering[head.layer], false).await?.0,
            };
            let positions: Vec<usize> = rank_desc(&scores).into_iter().take(probe.positions).collect();
            let (value_ranks, input_ranks) = self.ranks_at(fwd, head, &positions, &probe).await?;
            heads.push(StorageHead { head, positions, value_ranks, input_ranks });
        }
        Ok(Some(Storage {
            value_tokens: probe.value_tokens,
            input_tokens: probe.input_tokens,
            heads,
            value_token_text: None,
            input_token_text: None,
        }))
    }

    /// The ranks of the probe's tokens at `positions` of `head`: `[position][token]` in the
    /// value-output vectors, then in the layer inputs.
    async fn ranks_at(
        &mut self,
        fwd: &Forward,
        head: HeadScore,
        positions: &[usize],
        probe: &StorageProbe,
    ) -> Result<(Vec<Vec<u32>>, Vec<Vec<u32>>), ExplainError> {
        let (d, vocab, n) = (self.dims.hidden, self.dims.vocab, positions.len());
        let mut rec = Recorder::new(self.ctx, "explain: information storage");
        let (_, u) = self.value_outputs(&mut rec, fwd, head.layer, head.head)?;
        let (values, inputs) = (GpuTensor::zeros(self.ctx, &[n, d], "value outputs"), GpuTensor::zeros(self.ctx, &[n, d], "layer inputs"));
        let cap = fwd.pre.captures.row(Hook::resid_pre(head.layer))?;
        for (i, &p) in positions.iter().enumerate() {
            rec.copy_rows(&u, p, &values, i, 1)?;
            let at = cap
                .rows
                .binary_search(&p)
                .map_err(|_| ExplainError::Input(format!("{}: position {p} was not captured", Hook::resid_pre(head.layer))))?;
            rec.copy_rows(&cap.values, at, &inputs, i, 1)?;
        }
        let mut rank = |rows: &GpuTensor, tokens: &[u32]| -> Result<Option<GpuTensor>, ExplainError> {
            if tokens.is_empty() {
                return Ok(None);
            }
            let logits = z_logits(self.model, &mut rec, rows, &fwd.resid_final)?;
            let idx: Vec<u32> = (0..n).flat_map(|_| tokens.iter().copied()).collect();
            let idx = GpuTensor::from_u32(self.ctx, &idx, &[n, tokens.len()], "storage tokens")?;
            let out = GpuTensor::zeros(self.ctx, &[n, tokens.len()], "storage ranks");
            ops::token_rank(&mut rec, &logits, vocab, &idx, &out)?;
            Ok(Some(out))
        };
        let value_ranks = rank(&values, &probe.value_tokens)?;
        let input_ranks = rank(&inputs, &probe.input_tokens)?;
        // Both ranks come back with the stage's own submission, in one mapping.
        let wanted: Vec<&GpuTensor> = value_ranks.iter().chain(&input_ranks).collect();
        let parts = self.reader.submit(rec, &wanted).await?;
        let mut next = 0;
        let mut rows_of = |t: &Option<GpuTensor>, m: usize| match t {
            Some(_) => {
                next += 1;
                parts.u32(next - 1).chunks(m).map(<[u32]>::to_vec).collect()
            }
            None => vec![Vec::new(); n],
        };
        let values = rows_of(&value_ranks, probe.value_tokens.len());
        let inputs = rows_of(&input_ranks, probe.input_tokens.len());
        Ok((values, inputs))
    }
}
