//! The pure part of the method (docs/METHOD.md): a component's importance from two
//! log-probabilities, rankings, and the display normalisation of a map.

use crate::explanation::HeadScore;

/// The authors' epsilon in the fixed-scale projection (the model's own RMSNorm uses 1e-5).
pub const PROJECTION_EPS: f32 = 1e-6;

/// `Imp(c | b) = logp(w | b + c) - logp(w | b)`: how much adding component `c` to the residual
/// `b` raises the log-probability of the target (with a contrast token, of the logit
/// difference), in nats.
pub fn importance(with_component: f32, baseline: f32) -> f32 {
    with_component - baseline
}

/// The paper's head score: the importance of head (l, h)'s output `o^{l,h}` over the residual
/// entering its layer, `logp(w | x^l + o^{l,h}) - logp(w | x^l)`.
pub fn head_score(with_head: f32, entering_layer: f32) -> f32 {
    importance(with_head, entering_layer)
}

/// The paper's position score: the importance of position j's share of head (l, h)'s output,
/// `logp(w | x^l + alpha_j v_j W_O^h) - logp(w | x^l)`.
pub fn position_score(with_position: f32, entering_layer: f32) -> f32 {
    importance(with_position, entering_layer)
}

/// Indices of `values`, largest first; equal values keep index order. The one ranking every
/// list of scores uses (heads, patches, the faithfulness orders, the page's outlines).
pub fn rank_desc(values: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order
}

/// Heads sorted by score, best first (ties: lower layer, then lower head).
pub fn rank_heads(scores: &[Vec<f32>]) -> Vec<HeadScore> {
    let heads = scores.first().map_or(0, Vec::len);
    let flat: Vec<f32> = scores.iter().flatten().copied().collect();
    rank_desc(&flat).into_iter().map(|i| HeadScore { layer: i / heads, head: i % heads, score: flat[i] }).collect()
}

/// The authors' display normalisation: min-max to [0, 1], then divided by the sum. None when
/// every score is equal (min-max is undefined there) or any is not finite.
pub fn normalise_map(scores: &[f32]) -> Option<Vec<f32>> {
    if scores.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    if hi <= lo {
        return None;
    }
    let scaled: Vec<f32> = scores.iter().map(|&v| (v - lo) / (hi - lo)).collect();
    let sum: f32 = scaled.iter().sum();
    Some(scaled.iter().map(|v| v / sum).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_ranking() {
        assert_eq!(normalise_map(&[1.0, 3.0, 2.0]).unwrap(), vec![0.0, 2.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(normalise_map(&[0.5, 0.5]), None);
        assert_eq!(normalise_map(&[f32::NAN, 1.0]), None, "NaN scores give no map rather than a wrong one");
        let r = rank_heads(&[vec![0.1, 0.5], vec![0.5, -1.0]]);
        assert_eq!((r[0].layer, r[0].head), (0, 1));
        assert_eq!((r[1].layer, r[1].head), (1, 0));
        assert_eq!(r[3].score, -1.0);
        assert_eq!(importance(-1.0, -3.0), 2.0);
        assert_eq!(rank_desc(&[0.1, 0.9, 0.5, 0.9]), vec![1, 3, 2, 0]);
        assert!(rank_heads(&[]).is_empty());
    }
}
