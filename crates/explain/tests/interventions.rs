//! Interventions against HF transformers with forward hooks
//! (scripts/golden/make_intervention_fixtures.py): zero and mean head ablation, a residual
//! position and a head output patched from a clean run into a corrupted one; then the
//! bookkeeping HF cannot check (cache reuse, knockout, the whole answer).

use std::sync::OnceLock;

use llava_lens_explain::intervene::ablation::Ablation;
use llava_lens_explain::intervene::answer::{explain_answer, extended};
use llava_lens_explain::intervene::patching::patch;
use llava_lens_explain::intervene::{Intervener, Outcome, Targets};
use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_gpu::capture::CapturePlan;
use llava_lens_gpu::{ContextOptions, GpuContext, GpuTensor, Recorder, ops, read_f32};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, Prompt, WeightDType};
use llava_lens_tests::golden::{Golden, data};

fn ctx() -> &'static GpuContext {
    static C: OnceLock<GpuContext> = OnceLock::new();
    C.get_or_init(|| {
        GpuContext::new_blocking(ContextOptions::default()).unwrap_or_else(|e| panic!("intervention tests need an adapter: {e}"))
    })
}

fn fixture() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| Golden::open("golden/tiny-llava-interventions.safetensors"))
}

fn model() -> &'static Llava {
    static M: OnceLock<Llava> = OnceLock::new();
    M.get_or_init(|| {
        let dir = data("tiny-llava");
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&dir).unwrap(), &config, WeightDType::F32, None)).unwrap()
    })
}

fn prompt() -> Prompt {
    let dir = data("tiny-llava");
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), model().config.image_token_index).unwrap();
    let p = tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap();
    assert_eq!(p.ids, fixture().ids("input_ids"), "the fixture's prompt");
    p
}

fn intervener(image: &str) -> Intervener<'static> {
    pollster::block_on(Intervener::new(model(), ctx(), &prompt(), fixture().f32(&format!("pixel_values_{image}")))).unwrap()
}

fn meta<T: serde::de::DeserializeOwned>(key: &str) -> T {
    serde_json::from_str(&fixture().meta[key]).unwrap_or_else(|e| panic!("metadata {key}: {e}"))
}

/// Every log-probability the outcome holds (target, contrast, top 5) against the fixture's
/// log-softmax; the fixture's run must differ from `unlike` somewhere (or the check is empty).
fn assert_matches(what: &str, o: &Outcome, want: &str, unlike: &str) {
    let (lp, other) = (fixture().f32(&format!("logprobs_{want}")), fixture().f32(&format!("logprobs_{unlike}")));
    let moved = lp.iter().zip(other).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 1e-2, "{what}: the fixture's intervention changed nothing ({moved})");
    let want_top = {
        let mut i: Vec<usize> = (0..lp.len()).collect();
        i.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
        i
    };
    assert_eq!(o.top[0].id as usize, want_top[0], "{what}: top token");
    let mut worst = 0f32;
    for t in std::iter::once(&o.target).chain(&o.contrast).chain(&o.top) {
        let err = (t.log_prob - lp[t.id as usize]).abs();
        worst = worst.max(err);
        assert!(err <= 1e-4, "{what}: token {} log-prob {} vs transformers {} ({err})", t.id, t.log_prob, lp[t.id as usize]);
    }
    eprintln!("{what}: log-probabilities within {worst:.1e} of transformers (the run moved them by up to {moved:.2})");
}

fn targets() -> Targets {
    // A mid-ranked contrast so the logit difference is checked too.
    let lp = fixture().f32("logprobs_clean");
    let mut i: Vec<usize> = (0..lp.len()).collect();
    i.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
    Targets { target: i[0] as u32, contrast: Some(i[7] as u32) }
}

#[test]
fn base_runs_match_transformers() {
    let mut clean = intervener("clean");
    assert_matches("clean", &pollster::block_on(clean.base_outcome(targets())).unwrap(), "clean", "corrupt");
    let mut corrupt = intervener("corrupt");
    assert_matches("corrupt", &pollster::block_on(corrupt.base_outcome(targets())).unwrap(), "corrupt", "clean");
}

#[test]
fn head_ablation_matches_transformers() {
    let mut iv = intervener("clean");
    let zero: Vec<(usize, usize)> = meta("zero_heads");
    let a = pollster::block_on(iv.ablate(&zero, Ablation::Zero, targets())).unwrap();
    assert_matches("zero ablation", &a.after, "zero", "clean");
    assert_matches("zero ablation's before", &a.before, "clean", "zero");
    let diff = a.after.logit_diff.unwrap() - a.before.logit_diff.unwrap();
    assert!(diff.abs() > 1e-3, "the logit difference moved: {diff}");
    let mean: Vec<(usize, usize)> = meta("mean_heads");
    let m = pollster::block_on(iv.ablate(&mean, Ablation::Mean, targets())).unwrap();
    assert_matches("mean ablation", &m.after, "mean", "zero");
    let err = pollster::block_on(iv.ablate(&[(0, 9)], Ablation::Zero, targets())).unwrap_err().to_string();
    assert!(err.contains("head 0.9 does not exist"), "{err}");
}

#[test]
fn activation_patching_matches_transformers() {
    let clean = intervener("clean");
    let mut corrupt = intervener("corrupt");
    let (layer, head, position): (usize, usize, usize) = (meta("patch_layer"), meta("patch_head"), meta("patch_position"));
    let r = pollster::block_on(corrupt.patch_resid(&clean, layer, position, targets())).unwrap();
    assert_matches("residual patch", &r, "patch_resid", "corrupt");
    let h = pollster::block_on(corrupt.patch_head(&clean, layer, head, targets())).unwrap();
    assert_matches("head patch", &h, "patch_head", "corrupt");
    // The suffix runs overwrote the corrupted cache from `position` on; a later run that needs
    // those rows must not read them (it re-runs the base pass).
    let again = pollster::block_on(corrupt.patch_resid(&clean, layer, position, targets())).unwrap();
    assert_eq!(again, r, "the same cell twice");
    let base = pollster::block_on(corrupt.base_outcome(targets())).unwrap();
    assert_matches("corrupt after patching", &base, "corrupt", "clean");
    let runs = corrupt.runs;
    let late = pollster::block_on(corrupt.patch_resid(&clean, 0, clean.seq - 1, targets())).unwrap();
    let mut fresh = intervener("corrupt");
    let want = pollster::block_on(fresh.patch_resid(&clean, 0, clean.seq - 1, targets())).unwrap();
    assert_eq!(late, want, "a late cell after an early one reads a clean cache");
    assert_eq!(corrupt.runs, runs + 2, "the base pass re-ran first: the earlier cells had overwritten rows before the last position");
}

#[test]
fn patching_grids_are_the_single_cells() {
    let mut clean = intervener("clean");
    let mut corrupt = intervener("corrupt");
    let (off, n) = clean.image_span();
    let seq = clean.seq;
    let positions = [0, off, off + n - 1, seq - 1];
    let p = pollster::block_on(patch(&mut clean, &mut corrupt, &positions, None, Some(targets().contrast.unwrap()))).unwrap();
    let t = Targets { target: p.target, contrast: Some(p.contrast) };
    let (ld_clean, ld_corrupt) = (p.clean.logit_diff.unwrap(), p.corrupted.logit_diff.unwrap());
    let mut fresh = intervener("corrupt");
    let fresh_clean = intervener("clean");
    for (l, row) in p.resid.iter().enumerate() {
        // Before the image the two inputs are the same tokens: patching there changes nothing
        // (up to rounding: the base run's attention is the flash kernel's, a batched pass's the
        // segments kernel's, which sum in another order).
        assert!(row[0].abs() < 1e-4, "layer {l}, position 0 (before the image): {}", row[0]);
        for (i, &pos) in positions.iter().enumerate() {
            let o = pollster::block_on(fresh.patch_resid(&fresh_clean, l, pos, t)).unwrap();
            let want = (o.logit_diff.unwrap() - ld_corrupt) / (ld_clean - ld_corrupt);
            assert!((row[i] - want).abs() < 1e-4, "resid cell ({l}, {pos}): grid {} vs single {want}", row[i]);
        }
    }
    for (l, row) in p.heads.iter().enumerate() {
        for (h, &cell) in row.iter().enumerate() {
            let o = pollster::block_on(fresh.patch_head(&fresh_clean, l, h, t)).unwrap();
            let want = (o.logit_diff.unwrap() - ld_corrupt) / (ld_clean - ld_corrupt);
            assert!((cell - want).abs() < 1e-4, "head cell {l}.{h}: grid {cell} vs single {want}");
        }
    }
    let moved = p.resid.iter().flatten().chain(p.heads.iter().flatten()).filter(|v| v.abs() > 1e-3).count();
    assert!(moved > 0, "some cell recovers part of the difference");
    // The grids come from batched passes (one per layer here); split into passes of at most 8
    // rows (one cell a pass where a suffix is longer), they are the same.
    let (mut small_clean, mut small) = (intervener("clean"), intervener("corrupt"));
    small.rows_per_pass = 8;
    let q = pollster::block_on(patch(&mut small_clean, &mut small, &positions, None, Some(p.contrast))).unwrap();
    let d = p.resid.iter().flatten().zip(q.resid.iter().flatten()).chain(p.heads.iter().flatten().zip(q.heads.iter().flatten()));
    let worst = d.map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-4, "passes of 8 rows vs one per layer: {worst}");
    assert!(q.runs > p.runs, "smaller passes, more of them: {} vs {}", q.runs, p.runs);
    assert_eq!(p.patch_map(0).iter().filter(|v| v.is_some()).count(), 2, "two image patches were patched");
    let err = pollster::block_on(patch(&mut clean, &mut corrupt, &[seq], None, None)).unwrap_err().to_string();
    assert!(err.contains(&format!("position {seq} is outside")), "{err}");
}

#[test]
fn knockout_reuses_the_prefix_and_equals_a_full_masked_run() {
    let mut iv = intervener("clean");
    let t = targets();
    let none = pollster::block_on(iv.knockout(&[], t)).unwrap();
    let base = pollster::block_on(iv.base_outcome(t)).unwrap();
    assert!((none.target.log_prob - base.target.log_prob).abs() < 1e-5, "no patch knocked out: {none:?} vs {base:?}");
    let patches = [0, 3, 5, 15];
    let k = pollster::block_on(iv.knockout(&patches, t)).unwrap();
    // The same mask on a whole prefill from the pixels.
    let (off, n) = iv.image_span();
    let m = model();
    let mut blocked = vec![0u32; iv.seq];
    patches.iter().for_each(|&p| blocked[off + p] = 1);
    let mut rec = Recorder::new(ctx(), "full masked run");
    let s = m.config.vision_tower().unwrap().image_size;
    let px = GpuTensor::from_f32(ctx(), fixture().f32("pixel_values_clean"), &[3, s, s], "px").unwrap();
    let f = m.image_features(&mut rec, &px).unwrap();
    let keys = GpuTensor::from_u32(ctx(), &blocked, &[iv.seq], "keys").unwrap();
    let mask = ops::KeyMask { keys: &keys, from: off + n };
    let pre = m.prefill_with_features(&mut rec, &iv.prompt, Some(f), &CapturePlan::new(), 0, Some(mask)).unwrap();
    let lp = m.target_log_probs(&mut rec, &pre.hidden, iv.seq - 1, &[t.target]).unwrap();
    rec.submit();
    let want = pollster::block_on(read_f32(ctx(), &lp)).unwrap()[0];
    assert!((k.target.log_prob - want).abs() < 1e-5, "knockout {} vs a full masked run {want}", k.target.log_prob);
    assert!((k.target.log_prob - base.target.log_prob).abs() > 1e-4, "knocking out 4 of 16 patches moved p(target)");
    let err = pollster::block_on(iv.knockout(&[16], t)).unwrap_err().to_string();
    assert!(err.contains("patch 16 does not exist: the image has 16 patches"), "{err}");
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The whole answer shares the prompt's KV cache (one prefill, then one continued pass a token);
/// each token's explanation equals `explain` with the longer prefix, a whole prefill, within
/// float rounding (the last row's attention runs as a decode there, inside the prefill here).
#[test]
fn each_answer_token_is_explained_with_the_tokens_before_it() {
    let (m, p) = (model(), prompt());
    let px = fixture().f32("pixel_values_clean");
    // The residual lens at layer 1 comes from the prompt's pass for every token.
    let opts = ExplainOptions { lens_k: 3, lens_layer: Some(1), top_k_heads: 2, ..Default::default() };
    let a = pollster::block_on(explain_answer(m, ctx(), &p, px, &opts, 3, None)).unwrap();
    assert_eq!(a.tokens.len(), 3);
    assert_eq!(a.explanations.len(), 3);
    for (i, e) in a.explanations.iter().enumerate() {
        assert_eq!(e.target.id, a.tokens[i], "token {i} is its explanation's target");
        assert_eq!(e.prediction, a.tokens[i], "token {i} is the greedy next token after the tokens before it");
        assert_eq!(e.prompt_ids, extended(&p, &a.tokens[..i]).ids, "token {i}'s prefix");
        let want = pollster::block_on(explain(m, ctx(), &extended(&p, &a.tokens[..i]), px, &opts)).unwrap();
        let d_heads = max_diff(&e.head_scores.concat(), &want.head_scores.concat());
        let d_positions = max_diff(&e.position_scores, &want.position_scores);
        let d_attention = max_diff(&e.position_attention, &want.position_attention);
        assert!(d_heads < 1e-5 && d_positions < 1e-5 && d_attention < 1e-6, "token {i}: {d_heads} {d_positions} {d_attention}");
        let (best, want_best) = ((e.best_head.layer, e.best_head.head), (want.best_head.layer, want.best_head.head));
        assert!((e.target.log_prob - want.target.log_prob).abs() < 1e-5 && best == want_best, "token {i}: {best:?} vs {want_best:?}");
        assert_eq!(e.top.iter().map(|t| t.id).collect::<Vec<_>>(), want.top.iter().map(|t| t.id).collect::<Vec<_>>());
        assert_eq!(e.logit_lens, want.logit_lens, "token {i}: the lens of the image positions, read through this token's z");
        assert_eq!(e.sequence_length, want.sequence_length);
    }
    // The storage reading needs every position's rows: each token then gets a whole prefill,
    // and the answer is the same.
    let probe = llava_lens_explain::StorageProbe { heads: 1, positions: 2, value_tokens: vec![a.tokens[0]], input_tokens: vec![] };
    let with_storage = ExplainOptions { lens_k: 0, storage: Some(probe), ..Default::default() };
    let b = pollster::block_on(explain_answer(m, ctx(), &p, px, &with_storage, 3, None)).unwrap();
    assert_eq!(b.tokens, a.tokens);
    assert!(b.explanations.iter().all(|e| e.storage.is_some()));
    // An end-of-sequence token stops the answer before it is explained.
    let c = pollster::block_on(explain_answer(m, ctx(), &p, px, &opts, 3, Some(a.tokens[1]))).unwrap();
    assert_eq!(c.tokens, a.tokens[..1], "stopped at the second token");
}

/// An ablation in a later layer starts there from the base run's residual; the same edits on a
/// whole prefill from the embeddings give the same answer.
#[test]
fn ablating_from_a_later_layer_equals_a_whole_edited_prefill() {
    use llava_lens_explain::intervene::ablation::Ablation;
    let mut iv = intervener("clean");
    let t = targets();
    let a = pollster::block_on(iv.ablate(&[(1, 2)], Ablation::Zero, t)).unwrap();
    let edits = pollster::block_on(iv.ablation_edits(&[(1, 2)], Ablation::Zero)).unwrap();
    assert_eq!(edits.first_layer(), Some(1));
    let m = model();
    let mut rec = Recorder::new(ctx(), "whole edited prefill");
    let s = m.config.vision_tower().unwrap().image_size;
    let px = GpuTensor::from_f32(ctx(), fixture().f32("pixel_values_clean"), &[3, s, s], "px").unwrap();
    let f = m.image_features(&mut rec, &px).unwrap();
    let pre = m.prefill_edited(&mut rec, &iv.prompt, Some(f), &CapturePlan::new(), 0, None, &edits).unwrap();
    let lp = m.target_log_probs(&mut rec, &pre.hidden, iv.seq - 1, &[t.target]).unwrap();
    rec.submit();
    let want = pollster::block_on(read_f32(ctx(), &lp)).unwrap()[0];
    assert!((a.after.target.log_prob - want).abs() < 1e-5, "from layer 1: {} vs whole: {want}", a.after.target.log_prob);
    assert!((a.after.target.log_prob - a.before.target.log_prob).abs() > 1e-3, "the ablation changed the answer");
}
