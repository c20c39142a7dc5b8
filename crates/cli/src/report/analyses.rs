//! The paper's analyses over a batch run with `--analyses` (docs/BATCH.md, "Analyses"): how
//! well the best heads' top positions store the correct colour (value outputs) and object (layer
//! inputs) against a random one, as mean reciprocal ranks, and how much attention those positions
//! draw when the question names the same object vs another.

use serde::Serialize;
use serde_json::Value;

use super::stats::Row;

/// One line's readings: the ranks of every storage head's top positions, `[position][token]`
/// (token 0 the correct word, 1 the random one), and the attention (same, different).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRow {
    pub value_ranks: Vec<Vec<u32>>,
    pub input_ranks: Vec<Vec<u32>>,
    pub attention: Option<(f64, f64)>,
}

impl AnalysisRow {
    /// The readings of a batch line; None when it has none (no `--analyses`, or skipped).
    pub fn of(line: &Value) -> Option<AnalysisRow> {
        let heads = line.get("storage")?.get("heads")?.as_array()?;
        let ranks = |key: &str| -> Vec<Vec<u32>> {
            heads
                .iter()
                .filter_map(|h| h.get(key)?.as_array())
                .flatten()
                .filter_map(|r| r.as_array()?.iter().map(|x| x.as_u64().map(|u| u as u32)).collect())
                .collect()
        };
        let a = line.get("analyses").and_then(|a| a.get("attention"));
        let attention = a.and_then(|a| Some((a.get("same")?.as_f64()?, a.get("different")?.as_f64()?)));
        Some(AnalysisRow { value_ranks: ranks("value_ranks"), input_ranks: ranks("input_ranks"), attention })
    }
}

/// Mean reciprocal rank of the correct and of the random word over every (example, head,
/// position) reading that has both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mrr {
    pub readings: usize,
    pub correct: f64,
    pub random: f64,
    /// Share of the readings where the correct word ranks above the random one.
    pub correct_above_random: f64,
}

fn mrr<'a>(ranks: impl Iterator<Item = &'a Vec<u32>>) -> Option<Mrr> {
    let pairs: Vec<(u32, u32)> = ranks.filter_map(|r| Some((*r.first()?, *r.get(1)?))).collect();
    let n = pairs.len();
    (n > 0).then(|| Mrr {
        readings: n,
        correct: pairs.iter().map(|&(c, _)| 1.0 / c as f64).sum::<f64>() / n as f64,
        random: pairs.iter().map(|&(_, r)| 1.0 / r as f64).sum::<f64>() / n as f64,
        correct_above_random: pairs.iter().filter(|&&(c, r)| c < r).count() as f64 / n as f64,
    })
}

/// Mean attention of the top positions with the question as asked and naming another object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AttentionShift {
    pub examples: usize,
    pub same: f64,
    pub different: f64,
    /// Share of the examples where the positions draw more attention with the same object.
    pub same_above_different: f64,
}

/// The analyses of a group of rows; None when no row has them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Analyses {
    pub examples: usize,
    /// The correct vs a random colour in the value-output vectors.
    pub value_storage: Option<Mrr>,
    /// The correct vs a random object in the layer inputs.
    pub input_storage: Option<Mrr>,
    pub attention: Option<AttentionShift>,
}

pub fn summarise(rows: &[&Row]) -> Option<Analyses> {
    let with: Vec<&AnalysisRow> = rows.iter().filter_map(|r| r.analyses.as_ref()).collect();
    if with.is_empty() {
        return None;
    }
    let shifts: Vec<(f64, f64)> = with.iter().filter_map(|a| a.attention).collect();
    let n = shifts.len();
    Some(Analyses {
        examples: with.len(),
        value_storage: mrr(with.iter().flat_map(|a| &a.value_ranks)),
        input_storage: mrr(with.iter().flat_map(|a| &a.input_ranks)),
        attention: (n > 0).then(|| AttentionShift {
            examples: n,
            same: shifts.iter().map(|s| s.0).sum::<f64>() / n as f64,
            different: shifts.iter().map(|s| s.1).sum::<f64>() / n as f64,
            same_above_different: shifts.iter().filter(|s| s.0 > s.1).count() as f64 / n as f64,
        }),
    })
}

/// The table of [`summarise`]'s numbers (one row per reading), for analyses.csv.
pub fn csv(a: &Analyses) -> String {
    let mut s = String::from("reading,count,correct,random,correct_above_random\n");
    for (name, m) in [("value_storage_mrr", a.value_storage), ("input_storage_mrr", a.input_storage)] {
        if let Some(m) = m {
            s += &format!("{name},{},{},{},{}\n", m.readings, m.correct, m.random, m.correct_above_random);
        }
    }
    if let Some(t) = a.attention {
        s += &format!("attention_same_vs_different,{},{},{},{}\n", t.examples, t.same, t.different, t.same_above_different);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_ranks_pool_every_reading_and_skip_incomplete_ones() {
        let r = |v: &[u32]| v.to_vec();
        let m = mrr([r(&[1, 4]), r(&[2, 1]), r(&[5]), r(&[4, 8])].iter()).unwrap();
        assert_eq!(m.readings, 3);
        assert!((m.correct - (1.0 + 0.5 + 0.25) / 3.0).abs() < 1e-12);
        assert!((m.random - (0.25 + 1.0 + 0.125) / 3.0).abs() < 1e-12);
        assert!((m.correct_above_random - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(mrr(std::iter::empty()), None);
    }
}
