//! Capture plans: what to keep of a forward pass, named as TransformerLens names activations
//! (`blocks.22.attn.hook_pattern`, `blocks.3.hook_resid_pre`), chosen before anything is encoded.
//! Attention hooks are served by the attention kernel's `main_capture` entry point (only the
//! planned rows and heads are written); residual-stream hooks by copying planned rows. Nothing
//! else is read back.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use llava_lens_tensor::cpu::AttentionShape;

use crate::error::ensure;
use crate::{GpuContext, GpuError, GpuTensor, Recorder};

/// Where in a block an activation is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookPoint {
    /// Residual stream entering the block (`x^l`).
    ResidPre,
    /// After the attention residual add (`r^l`).
    ResidMid,
    /// Leaving the block (`x^{l+1}`).
    ResidPost,
    /// Attention output after o_proj (`a^l`).
    AttnOut,
    /// MLP output (`f^l`).
    MlpOut,
    /// Attention probabilities `[row, head, key]`.
    AttnPattern,
    /// Per-head attention output before o_proj `[row, head, head_dim]`.
    AttnZ,
}

impl HookPoint {
    const NAMES: [(HookPoint, &'static str); 7] = [
        (HookPoint::ResidPre, "hook_resid_pre"),
        (HookPoint::ResidMid, "hook_resid_mid"),
        (HookPoint::ResidPost, "hook_resid_post"),
        (HookPoint::AttnOut, "hook_attn_out"),
        (HookPoint::MlpOut, "hook_mlp_out"),
        (HookPoint::AttnPattern, "attn.hook_pattern"),
        (HookPoint::AttnZ, "attn.hook_z"),
    ];

    pub fn is_attention(self) -> bool {
        matches!(self, HookPoint::AttnPattern | HookPoint::AttnZ)
    }
}

/// A named activation of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hook {
    pub layer: usize,
    pub point: HookPoint,
}

impl Hook {
    /// `blocks.{layer}.hook_resid_pre`: the residual stream entering the block.
    pub fn resid_pre(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::ResidPre }
    }
    /// `blocks.{layer}.hook_resid_mid`: after the attention residual add.
    pub fn resid_mid(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::ResidMid }
    }
    /// `blocks.{layer}.hook_resid_post`: leaving the block.
    pub fn resid_post(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::ResidPost }
    }
    /// `blocks.{layer}.hook_attn_out`: the attention output after o_proj.
    pub fn attn_out(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::AttnOut }
    }
    /// `blocks.{layer}.hook_mlp_out`: the MLP output.
    pub fn mlp_out(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::MlpOut }
    }
    /// `blocks.{layer}.attn.hook_pattern`: attention probabilities.
    pub fn pattern(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::AttnPattern }
    }
    /// `blocks.{layer}.attn.hook_z`: per-head outputs before o_proj.
    pub fn z(layer: usize) -> Hook {
        Hook { layer, point: HookPoint::AttnZ }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = HookPoint::NAMES.iter().find(|(p, _)| *p == self.point).map(|(_, n)| *n).unwrap_or("?");
        write!(f, "blocks.{}.{name}", self.layer)
    }
}

impl FromStr for Hook {
    type Err = GpuError;
    fn from_str(s: &str) -> Result<Self, GpuError> {
        let bad = || {
            let known: Vec<&str> = HookPoint::NAMES.iter().map(|(_, n)| *n).collect();
            GpuError::Capture(format!("{s:?} is not a hook name; expected blocks.<layer>.<{}>", known.join("|")))
        };
        let rest = s.strip_prefix("blocks.").ok_or_else(bad)?;
        let (layer, name) = rest.split_once('.').ok_or_else(bad)?;
        // Canonical decimal only ("7", not "07" or "+7"): one name per hook.
        let canonical = !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit()) && (layer == "0" || !layer.starts_with('0'));
        let layer = if canonical { layer.parse().map_err(|_| bad())? } else { return Err(bad()) };
        let point = HookPoint::NAMES.iter().find(|(_, n)| *n == name).map(|(p, _)| *p).ok_or_else(bad)?;
        Ok(Hook { layer, point })
    }
}

/// What to keep of one hook: sequence rows, and for attention hooks the heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub rows: Vec<usize>,
    pub heads: Vec<usize>,
}

/// Every hook a forward pass must serve, merged per hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturePlan {
    hooks: BTreeMap<Hook, Selection>,
}

fn merge(into: &mut Vec<usize>, more: &[usize]) {
    into.extend_from_slice(more);
    into.sort_unstable();
    into.dedup();
}

impl CapturePlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `rows` (and for attention hooks `heads`) of `hook`.
    pub fn add(&mut self, hook: Hook, rows: &[usize], heads: &[usize]) -> Result<&mut Self, GpuError> {
        ensure(!rows.is_empty(), "capture", || format!("{hook}: no rows selected"))?;
        ensure(hook.point.is_attention() != heads.is_empty(), "capture", || {
            format!("{hook}: heads are selected for attention hooks and only for them")
        })?;
        let sel = self.hooks.entry(hook).or_insert(Selection { rows: vec![], heads: vec![] });
        merge(&mut sel.rows, rows);
        merge(&mut sel.heads, heads);
        Ok(self)
    }

    /// [`CapturePlan::add`] of the hook called `name` (as a user writes it:
    /// `blocks.22.attn.hook_pattern`).
    pub fn add_named(&mut self, name: &str, rows: &[usize], heads: &[usize]) -> Result<&mut Self, GpuError> {
        self.add(name.parse()?, rows, heads)
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    pub fn hooks(&self) -> impl Iterator<Item = (&Hook, &Selection)> {
        self.hooks.iter()
    }

    pub fn get(&self, layer: usize, point: HookPoint) -> Option<&Selection> {
        self.hooks.get(&Hook { layer, point })
    }

    /// The rows and heads layer `layer`'s attention kernel must capture (pattern and z share the
    /// kernel's slots, so their selections are united).
    pub fn attention(&self, layer: usize) -> Option<Selection> {
        let parts: Vec<&Selection> = [HookPoint::AttnPattern, HookPoint::AttnZ].iter().filter_map(|&p| self.get(layer, p)).collect();
        if parts.is_empty() {
            return None;
        }
        let mut sel = Selection { rows: vec![], heads: vec![] };
        for p in parts {
            merge(&mut sel.rows, &p.rows);
            merge(&mut sel.heads, &p.heads);
        }
        Some(sel)
    }
}

const NONE: u32 = u32::MAX;

/// Device buffers for one attention call's capture: slot maps and the captured values.
#[derive(Debug)]
pub struct AttentionCapture {
    pub rows: Vec<usize>,
    pub heads: Vec<usize>,
    n_queries: usize,
    n_heads: usize,
    n_keys: usize,
    head_dim: usize,
    pub(crate) row_slots: GpuTensor,
    /// The query row of each row slot (the flash kernel's capture pass walks the slots).
    pub(crate) row_list: GpuTensor,
    pub(crate) head_slots: GpuTensor,
    /// `[rows, heads, n_keys]` probabilities (masked keys 0).
    pub pattern: GpuTensor,
    /// `[rows, heads, head_dim]` per-head outputs before o_proj.
    pub z: GpuTensor,
}

impl AttentionCapture {
    pub fn new(ctx: &GpuContext, sel: &Selection, s: &AttentionShape) -> Result<Self, GpuError> {
        ensure(!sel.rows.is_empty() && !sel.heads.is_empty(), "capture", || "empty attention selection".into())?;
        if let Some(&r) = sel.rows.iter().find(|&&r| r >= s.n_queries) {
            return Err(GpuError::Capture(format!("row {r} is outside the {} query rows", s.n_queries)));
        }
        if let Some(&h) = sel.heads.iter().find(|&&h| h >= s.n_heads) {
            return Err(GpuError::Capture(format!("head {h} is outside the {} heads", s.n_heads)));
        }
        let slots = |n: usize, chosen: &[usize]| {
            let mut map = vec![NONE; n];
            for (slot, &i) in chosen.iter().enumerate() {
                map[i] = slot as u32;
            }
            map
        };
        let (nr, nh) = (sel.rows.len(), sel.heads.len());
        Ok(AttentionCapture {
            rows: sel.rows.clone(),
            heads: sel.heads.clone(),
            n_queries: s.n_queries,
            n_heads: s.n_heads,
            n_keys: s.n_keys,
            head_dim: s.head_dim,
            row_slots: GpuTensor::from_u32(ctx, &slots(s.n_queries, &sel.rows), &[s.n_queries], "capture row slots")?,
            row_list: GpuTensor::from_u32(ctx, &sel.rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), &[sel.rows.len()], "capture rows")?,
            head_slots: GpuTensor::from_u32(ctx, &slots(s.n_heads, &sel.heads), &[s.n_heads], "capture head slots")?,
            pattern: GpuTensor::zeros(ctx, &[nr, nh, s.n_keys], "attn.hook_pattern"),
            z: GpuTensor::zeros(ctx, &[nr, nh, s.head_dim], "attn.hook_z"),
        })
    }

    /// The capture was planned for this attention call's geometry.
    pub(crate) fn check(&self, s: &AttentionShape) -> Result<(), GpuError> {
        let planned = (self.n_queries, self.n_heads, self.n_keys, self.head_dim);
        let given = (s.n_queries, s.n_heads, s.n_keys, s.head_dim);
        ensure(planned == given, "attention_capture", || {
            format!("planned for (queries, heads, keys, head_dim) {planned:?}, called with {given:?}")
        })
    }
}

/// Device buffer for a residual-stream hook: the planned rows of a `[L, d]` activation.
#[derive(Debug)]
pub struct RowCapture {
    pub rows: Vec<usize>,
    /// `[rows, d]`.
    pub values: GpuTensor,
}

impl RowCapture {
    pub fn new(ctx: &GpuContext, sel: &Selection, d: usize, label: &str) -> Self {
        RowCapture { rows: sel.rows.clone(), values: GpuTensor::zeros(ctx, &[sel.rows.len(), d], label) }
    }

    /// Records the copies of the planned rows of `src` (`[L, d]`), one per run of adjacent rows.
    pub fn record(&self, rec: &mut Recorder<'_>, src: &GpuTensor) -> Result<(), GpuError> {
        let d = self.values.len() / self.rows.len().max(1);
        ensure(src.shape().last() == Some(&d), "capture", || format!("source shape {:?} does not end in d = {d}", src.shape()))?;
        let n_src = src.len() / d;
        let mut i = 0;
        while i < self.rows.len() {
            let start = self.rows[i];
            ensure(start < n_src, "capture", || format!("row {start} is outside the {n_src} rows"))?;
            let mut end = i + 1;
            while end < self.rows.len() && self.rows[end] == self.rows[end - 1] + 1 && self.rows[end] < n_src {
                end += 1;
            }
            rec.copy_elements(src, start * d, &self.values, i * d, (end - i) * d)?;
            i = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_names_round_trip_and_bad_names_explain_themselves() {
        for name in ["blocks.22.attn.hook_pattern", "blocks.0.hook_resid_pre", "blocks.31.hook_mlp_out", "blocks.3.attn.hook_z"] {
            assert_eq!(name.parse::<Hook>().unwrap().to_string(), name);
        }
        let err = "blocks.x.hook_resid_pre".parse::<Hook>().unwrap_err().to_string();
        assert!(err.contains("blocks.<layer>.<hook_resid_pre"), "{err}");
        assert!("blocks.1.attn.hook_q".parse::<Hook>().is_err());
    }

    /// Hook names come from users (CLI flags, the web page): no input may panic the parser.
    #[test]
    fn hook_parser_survives_random_and_mutated_names() {
        let mut rng = llava_lens_tensor::Rng::new(2024);
        let seeds = ["blocks.22.attn.hook_pattern", "blocks.0.hook_resid_pre", "blocks.7.attn.hook_z"];
        let alphabet = b"blocks.0123456789attn_hook_pattern_z.resid_pre\xff\0 -";
        for i in 0..20_000 {
            let mut bytes = seeds[i % seeds.len()].as_bytes().to_vec();
            for _ in 0..rng.below(4) + 1 {
                let at = rng.below(bytes.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
                    _ if at < bytes.len() => bytes[at] = rng.below(256) as u8,
                    _ => {}
                }
            }
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(h) = s.parse::<Hook>() {
                assert_eq!(h.to_string(), s, "a name that parses must print back as itself");
            }
        }
        let huge = format!("blocks.{}.hook_resid_pre", "9".repeat(100));
        assert!(huge.parse::<Hook>().is_err(), "layer numbers beyond usize are rejected, not wrapped");
    }

    #[test]
    fn plan_merges_pattern_and_z_selections() {
        let mut plan = CapturePlan::new();
        plan.add_named("blocks.2.attn.hook_pattern", &[9, 3], &[1]).unwrap();
        plan.add_named("blocks.2.attn.hook_z", &[3], &[4, 1]).unwrap();
        plan.add_named("blocks.2.hook_resid_pre", &[9], &[]).unwrap();
        assert_eq!(plan.attention(2), Some(Selection { rows: vec![3, 9], heads: vec![1, 4] }));
        assert_eq!(plan.attention(1), None);
        assert!(plan.add_named("blocks.2.hook_resid_pre", &[1], &[0]).is_err(), "heads on a residual hook");
        assert!(plan.add_named("blocks.2.attn.hook_z", &[1], &[]).is_err(), "attention hook without heads");
    }
}
