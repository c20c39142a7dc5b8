//! Zoom and re-ask over a batch run with `--zoom` (docs/BATCH.md, "Zoom"): how often the answer
//! stays right when the picture is cropped to the map's window, against a random window of the
//! same size. The gap is a usefulness measure of the map (a map that points at the evidence
//! keeps it in the crop).

use serde::Serialize;
use serde_json::Value;

use super::stats::{Row, word};

/// The top token's text and p(target) on one picture.
type Answer = (Option<String>, f64);

/// One line's zoomed answers on the whole picture, the map's window, and each random window.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoomRow {
    pub whole: Answer,
    pub map: Answer,
    pub random: Vec<Answer>,
}

impl ZoomRow {
    /// The readings of a batch line; None when it has none (no `--zoom`, or no image).
    pub fn of(line: &Value) -> Option<ZoomRow> {
        let z = line.get("zoom")?;
        let answer = |o: &Value| -> Option<Answer> {
            let top = o.get("top")?.get(0).and_then(|t| t.get("text")).and_then(Value::as_str).map(String::from);
            Some((top, o.get("target")?.get("log_prob")?.as_f64()?.exp()))
        };
        Some(ZoomRow {
            whole: answer(z.get("before")?)?,
            map: answer(z.get("map")?.get("outcome")?)?,
            random: z.get("random")?.as_array()?.iter().filter_map(|r| answer(r.get("outcome")?)).collect(),
        })
    }
}

/// Accuracy (over the rows with an expected answer) and mean p(target) (over all zoomed rows)
/// on the whole picture, on the map's window and on random windows (each random window counts
/// as its example's share).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ZoomSummary {
    pub examples: usize,
    pub answered: usize,
    pub accuracy_whole: Option<f64>,
    pub accuracy_map_window: Option<f64>,
    pub accuracy_random_window: Option<f64>,
    /// The map's window's accuracy minus the random windows': the map's usefulness for zooming.
    pub accuracy_map_minus_random: Option<f64>,
    pub mean_p_whole: f64,
    pub mean_p_map_window: f64,
    pub mean_p_random_window: f64,
}

pub fn summarise(rows: &[&Row]) -> Option<ZoomSummary> {
    let zoomed: Vec<(&Row, &ZoomRow)> = rows.iter().filter_map(|r| Some((*r, r.zoom.as_ref()?))).collect();
    if zoomed.is_empty() {
        return None;
    }
    let n = zoomed.len() as f64;
    let mean_of = |f: &dyn Fn(&ZoomRow) -> f64| zoomed.iter().map(|(_, z)| f(z)).sum::<f64>() / n;
    let random_mean = |z: &ZoomRow, f: &dyn Fn(&Answer) -> f64| {
        if z.random.is_empty() { 0.0 } else { z.random.iter().map(f).sum::<f64>() / z.random.len() as f64 }
    };
    let answered: Vec<(&str, &ZoomRow)> = zoomed.iter().filter_map(|(r, z)| Some((r.answer.as_deref()?, *z))).collect();
    let share = |f: &dyn Fn(&str, &ZoomRow) -> f64| {
        (!answered.is_empty()).then(|| answered.iter().map(|(a, z)| f(a, z)).sum::<f64>() / answered.len() as f64)
    };
    let right = |answer: &str, top: &Answer| (top.0.as_deref().map(word).as_deref() == Some(&word(answer))) as u8 as f64;
    let whole = share(&|a, z| right(a, &z.whole));
    let map = share(&|a, z| right(a, &z.map));
    let random = share(&|a, z| random_mean(z, &|r| right(a, r)));
    Some(ZoomSummary {
        examples: zoomed.len(),
        answered: answered.len(),
        accuracy_whole: whole,
        accuracy_map_window: map,
        accuracy_random_window: random,
        accuracy_map_minus_random: map.zip(random).map(|(m, r)| m - r),
        mean_p_whole: mean_of(&|z| z.whole.1),
        mean_p_map_window: mean_of(&|z| z.map.1),
        mean_p_random_window: mean_of(&|z| random_mean(z, &|r| r.1)),
    })
}

/// The summary as CSV: one line per condition.
pub fn csv(z: &ZoomSummary) -> String {
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    format!(
        "picture,accuracy,mean_p_target,examples,answered\nwhole,{},{},{n},{a}\nmap_window,{},{},{n},{a}\nrandom_window,{},{},{n},{a}\n",
        cell(z.accuracy_whole),
        z.mean_p_whole,
        cell(z.accuracy_map_window),
        z.mean_p_map_window,
        cell(z.accuracy_random_window),
        z.mean_p_random_window,
        n = z.examples,
        a = z.answered
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(top: &str, p: f64) -> Value {
        json!({"target": {"id": 1, "text": "x", "log_prob": p.ln()}, "top": [{"id": 2, "text": top, "log_prob": -0.1}]})
    }

    #[test]
    fn accuracy_and_probability_by_hand() {
        let line = json!({"zoom": {
            "fraction": 0.5, "window_patches": 1,
            "before": outcome("▁Blue", 0.3),
            "map": {"window": {"row": 0, "col": 0, "side": 1}, "crop": {}, "outcome": outcome("▁red", 0.6)},
            "random": [
                {"window": {}, "crop": {}, "outcome": outcome("▁blue", 0.2)},
                {"window": {}, "crop": {}, "outcome": outcome("▁red", 0.5)},
            ],
        }});
        let z = ZoomRow::of(&line).unwrap();
        assert_eq!(z.random.len(), 2);
        assert!((z.map.1 - 0.6).abs() < 1e-12);
        let mut a = crate::report::stats::tests::row("a", vec![vec![1.0]]);
        a.answer = Some("red".into());
        a.zoom = Some(z.clone());
        // No expected answer: counted in p, not in accuracy.
        let mut b = a.clone();
        b.answer = None;
        let s = summarise(&[&a, &b]).unwrap();
        assert_eq!((s.examples, s.answered), (2, 1));
        assert_eq!((s.accuracy_whole, s.accuracy_map_window, s.accuracy_random_window), (Some(0.0), Some(1.0), Some(0.5)));
        assert_eq!(s.accuracy_map_minus_random, Some(0.5));
        assert!(
            (s.mean_p_whole - 0.3).abs() < 1e-12
                && (s.mean_p_map_window - 0.6).abs() < 1e-12
                && (s.mean_p_random_window - 0.35).abs() < 1e-12,
            "{s:?}"
        );
        let mut c = a.clone();
        c.zoom = None;
        assert_eq!(summarise(&[&c]), None, "a run without --zoom has no zoom summary");
        assert_eq!(ZoomRow::of(&json!({"zoom": {"before": outcome("a", 0.5)}})), None, "a cut zoom field is no reading");
    }
}
