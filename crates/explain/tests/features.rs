//! The features beyond the paper's default, checked by value: contrast explanations, the top-k
//! map, every head's map (grouped-query attention included) against HF transformers, and the
//! faithfulness AUCs against their own curves.

use std::sync::OnceLock;

use llava_lens_explain::faithfulness::{Operator, auc, faithfulness, normalise_curve};
use llava_lens_explain::{ExplainOptions, Explanation, explain};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, Prompt, WeightDType};
use llava_lens_tests::golden::{data, golden};

fn ctx() -> &'static GpuContext {
    static C: OnceLock<GpuContext> = OnceLock::new();
    C.get_or_init(|| GpuContext::new_blocking(ContextOptions::default()).unwrap_or_else(|e| panic!("explain tests need an adapter: {e}")))
}

/// The committed tiny model (2 layers of 4 heads over 2 key/value heads) and the golden prompt.
fn model() -> &'static (Llava, Prompt) {
    static M: OnceLock<(Llava, Prompt)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = data("tiny-llava");
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
        let model = pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&dir).unwrap(), &config, WeightDType::F32, None)).unwrap();
        (model, tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap())
    })
}

fn run(opts: &ExplainOptions) -> Explanation {
    let (m, p) = model();
    pollster::block_on(explain(m, ctx(), p, golden().f32("pixel_values"), opts)).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every head mapped.
fn all_heads() -> ExplainOptions {
    ExplainOptions { top_k_heads: usize::MAX, lens_k: 0, ..Default::default() }
}

#[test]
fn a_contrast_explanation_is_the_difference_of_the_two_plain_ones() {
    // Scores are differences of log-probabilities, so "A rather than B" = score(A) - score(B):
    // heads, layers and every head's position scores.
    let top = run(&all_heads()).top;
    let (a, b) = (top[0].id, top[1].id);
    let ea = run(&ExplainOptions { target: Some(a), ..all_heads() });
    let eb = run(&ExplainOptions { target: Some(b), ..all_heads() });
    let ec = run(&ExplainOptions { target: Some(a), contrast: Some(b), ..all_heads() });
    assert_eq!((ec.target.id, ec.contrast.as_ref().map(|c| c.id)), (a, Some(b)));
    let diff = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p - q).collect::<Vec<f32>>();
    let flat = |e: &Explanation| e.head_scores.iter().flatten().copied().collect::<Vec<f32>>();
    let checks = [
        ("head scores", flat(&ec), diff(&flat(&ea), &flat(&eb))),
        ("attention layer scores", ec.attention_layer_scores.clone(), diff(&ea.attention_layer_scores, &eb.attention_layer_scores)),
        ("mlp layer scores", ec.mlp_layer_scores.clone(), diff(&ea.mlp_layer_scores, &eb.mlp_layer_scores)),
    ];
    for (what, got, want) in checks {
        let err = max_abs(&got, &want);
        assert!(err <= 1e-4, "{what}: contrast vs difference, max abs error {err}");
    }
    for m in &ec.head_maps {
        let (l, h) = (m.head.layer, m.head.head);
        let want = diff(ea.head_map(l, h).unwrap(), eb.head_map(l, h).unwrap());
        let err = max_abs(&m.patch_scores, &want);
        assert!(err <= 1e-4, "head {l}.{h}'s positions: contrast vs difference, max abs error {err}");
    }
}

#[test]
fn the_top_k_map_is_the_sum_of_the_top_k_heads_maps() {
    let e = run(&ExplainOptions { top_k_heads: 3, lens_k: 0, ..Default::default() });
    let map = e.top_k_heads_map.as_ref().unwrap();
    assert_eq!(map.k, 3);
    assert_eq!(map.heads, e.top_heads[..3]);
    // Each head's map from an explanation of its own.
    let mut sum = vec![0f32; e.patch_scores.len()];
    for h in &map.heads {
        let one = run(&ExplainOptions { head_maps: vec![(h.layer, h.head)], lens_k: 0, ..Default::default() });
        one.head_map(h.layer, h.head).unwrap().iter().zip(&mut sum).for_each(|(v, s)| *s += v);
    }
    let err = max_abs(&map.patch_scores, &sum);
    assert!(err <= 1e-5, "top-3 map vs the sum of the three heads' maps: {err}");
}

#[test]
fn every_heads_positions_match_the_authors_formula_in_hf_transformers() {
    // scripts/golden/make_fixtures.py's position_scores_all: head h reads key/value head
    // h / (heads / kv_heads); the tiny model's best head is one where h % kv_heads agrees, the
    // others are not.
    let e = run(&all_heads());
    let g = golden().f32("position_scores_all");
    let (heads, seq) = (e.head_scores[0].len(), e.sequence_length);
    let (off, n) = (e.image_offset, e.image_tokens);
    assert_eq!(e.head_maps.len(), e.head_scores.len() * heads);
    for m in &e.head_maps {
        let (l, h) = (m.head.layer, m.head.head);
        let want = &g[(l * heads + h) * seq..(l * heads + h + 1) * seq];
        let err = max_abs(&m.patch_scores, &want[off..off + n]);
        assert!(err <= 1e-4, "head {l}.{h}: positions vs HF, max abs error {err}");
    }
    let best = (e.best_head.layer * heads + e.best_head.head) * seq;
    assert!(max_abs(&e.position_scores, &g[best..best + seq]) <= 1e-4);
}

#[test]
fn faithfulness_aucs_are_the_areas_of_the_reported_curves() {
    let (m, p) = model();
    let pixels = golden().f32("pixel_values");
    let e = run(&ExplainOptions { lens_k: 0, ..Default::default() });
    let f = pollster::block_on(faithfulness(m, ctx(), p, pixels, &e, Operator::Knockout, 4, 1)).unwrap();
    assert!(f.warning.is_none(), "{:?}", f.warning);
    for c in std::iter::once(&f.map).chain([&f.mean_attention]).chain(&f.random) {
        // Deletion starts from nothing removed (normalised 1) and ends with everything (0);
        // insertion the other way round.
        let del = normalise_curve(&c.deletion, f.s_orig, f.s_base).unwrap();
        let ins = normalise_curve(&c.insertion, f.s_orig, f.s_base).unwrap();
        assert_eq!((c.deletion[0], *c.deletion.last().unwrap()), (f.s_orig, f.s_base), "{}", c.order);
        assert!((del[0] - 1.0).abs() < 1e-6 && del.last().unwrap().abs() < 1e-6, "{}: {del:?}", c.order);
        assert!(ins[0].abs() < 1e-6 && (ins.last().unwrap() - 1.0).abs() < 1e-6, "{}: {ins:?}", c.order);
        assert_eq!(c.deletion_auc, Some(auc(&del)), "{}: deletion AUC", c.order);
        assert_eq!(c.insertion_auc, Some(auc(&ins)), "{}: insertion AUC", c.order);
    }
    let mean_del = f.random.iter().filter_map(|c| c.deletion_auc).sum::<f32>() / f.random.len() as f32;
    assert_eq!(f.random_mean_auc.0, Some(mean_del));
}
