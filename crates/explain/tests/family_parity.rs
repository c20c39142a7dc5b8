//! The method on the Llava family's variants (tests/data/tiny-llava-siglip,
//! tests/data/tiny-llava-mistral, tests/data/tiny-llava-qwen and tests/data/tiny-llava-layers,
//! made by transformers:
//! scripts/golden/make_tiny_hf.py) against
//! the authors' formulas computed in HF transformers (scripts/golden/make_fixtures.py): head and
//! layer scores, every head's position scores (the grouped-query mapping included), the
//! baseline map, the image grid each tower makes, and the information-storage ranks at every
//! position of the best head.

use llava_lens_explain::{ExplainOptions, StorageProbe, explain, last_query_attention};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, PromptParts, WeightDType};
use llava_lens_tests::ctx;
use llava_lens_tests::golden::{Golden, data};

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Head, layer and best-head position scores within 1e-4 of the golden file's.
fn check_scores(e: &llava_lens_explain::Explanation, g: &Golden, label: &str) {
    let heads: Vec<f32> = e.head_scores.iter().flatten().copied().collect();
    for (name, got, want) in [
        ("head_scores", &heads, g.f32("head_scores")),
        ("attention_layer_scores", &e.attention_layer_scores, g.f32("attention_layer_scores")),
        ("mlp_layer_scores", &e.mlp_layer_scores, g.f32("mlp_layer_scores")),
        ("position_scores", &e.position_scores, g.f32("position_scores")),
    ] {
        let err = max_abs(got, want);
        eprintln!("{label} {name}: max abs error {err:.2e}");
        assert!(err <= 1e-4, "{label} {name}: max abs error {err}");
    }
}

/// Options that map every head and read the storage of every position of the best head for the
/// fixture's probe tokens.
fn options(g: &Golden) -> ExplainOptions {
    let probes = g.ids("storage_tokens");
    let storage = StorageProbe { heads: 1, positions: usize::MAX, value_tokens: probes.clone(), input_tokens: probes };
    ExplainOptions { top_k_heads: usize::MAX, storage: Some(storage), ..Default::default() }
}

/// The storage ranks (value outputs and layer inputs) at every position of the best head equal
/// transformers' exactly, except where other logits lie within float error of the probe's (the
/// fixture counts them per reading: the rank may then differ by at most that many).
fn check_storage(e: &llava_lens_explain::Explanation, g: &Golden, label: &str) {
    let s = e.storage.as_ref().unwrap_or_else(|| panic!("{label}: no storage reading"));
    let probes = g.ids("storage_tokens");
    assert_eq!((s.value_tokens.clone(), s.input_tokens.clone()), (probes.clone(), probes.clone()), "{label}: probe tokens");
    let h = &s.heads[0];
    assert_eq!(h.head, e.best_head, "{label}: the storage head is the best head");
    assert_eq!(h.positions.len(), e.sequence_length, "{label}: every position read");
    let m = probes.len();
    let (mut exact, mut tied) = (0, 0);
    for (name, got, want, near) in [
        ("value", &h.value_ranks, g.ids("storage_value_ranks"), g.ids("storage_value_near_ties")),
        ("input", &h.input_ranks, g.ids("storage_input_ranks"), g.ids("storage_input_near_ties")),
    ] {
        for (i, &p) in h.positions.iter().enumerate() {
            for t in 0..m {
                let (r, w, n) = (got[i][t], want[p * m + t], near[p * m + t]);
                assert!(
                    r.abs_diff(w) <= n,
                    "{label} {name} rank of token {} at position {p}: {r}, transformers {w} ({n} near ties)",
                    probes[t]
                );
                if r == w { exact += 1 } else { tied += 1 }
            }
        }
    }
    eprintln!("{label} storage: {exact} ranks exact, {tied} within near ties");
}

#[test]
fn f32_scores_and_every_heads_positions_match_the_authors_formulas() {
    // (model, grid, image rows): SigLIP keeps every patch and has no class token; the CLIP tower
    // under Mistral drops its class token ("default"); Qwen2's unembedding is its embeddings.
    // The layers variant concatenates three CLIP states per patch.
    for (model, grid, rows) in
        [("tiny-llava-siglip", 5, 25), ("tiny-llava-mistral", 4, 16), ("tiny-llava-qwen", 5, 25), ("tiny-llava-layers", 4, 16)]
    {
        let g = Golden::open(&format!("golden/{model}.safetensors"));
        let dir = data(model);
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
        let weights = Checkpoint::open(&dir).unwrap();
        let llava = pollster::block_on(Llava::load(ctx(), &weights, &config, WeightDType::F32, None)).unwrap();
        let prompt = tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap();
        let e = pollster::block_on(explain(&llava, ctx(), &prompt, g.f32("pixel_values"), &options(&g))).unwrap();
        assert_eq!(e.target.id, g.ids("explain_target")[0], "{model}: target");
        assert_eq!((e.grid, e.image_tokens), (grid, rows), "{model}: image grid");
        check_scores(&e, &g, model);
        check_storage(&e, &g, model);
        // The attention-only pass the analyses rerun on edited questions: the last query's
        // attention of a head, as transformers returned it.
        let (seq, n_heads) = (e.sequence_length, e.head_scores[0].len());
        for (l, h) in [(e.best_head.layer, e.best_head.head), (0, n_heads - 1)] {
            let alpha = pollster::block_on(last_query_attention(&llava, ctx(), &prompt, g.f32("pixel_values"), l, h)).unwrap();
            let at = (l * n_heads + h) * seq;
            let err = max_abs(&alpha, &g.f32("attn_last_row")[at..at + seq]);
            assert!(err <= 1e-5, "{model} head {l}.{h}: last-query attention vs HF, max abs error {err}");
        }
        let err = max_abs(&e.baseline_map, g.f32("baseline_map"));
        assert!(err <= 1e-4, "{model} baseline_map: max abs error {err}");
        // The embedding lens reads each image row through the model's own input embeddings
        // (Qwen's are also its unembedding): its top token per row is HF's projector output's
        // nearest row of embed_tokens by dot product, computed here on the CPU.
        let (vocab, d) = (config.text.vocab_size, config.text.hidden_size);
        let embed = weights.f32("language_model.model.embed_tokens.weight", &[vocab, d]).unwrap();
        let lens = e.logit_lens.as_ref().expect("the lens is on by default");
        for (row, feature) in g.f32("image_features").chunks(d).enumerate() {
            let dot = |t: usize| embed[t * d..(t + 1) * d].iter().zip(feature).map(|(a, b)| a * b).sum::<f32>();
            let best = (0..vocab).max_by(|&a, &b| dot(a).total_cmp(&dot(b))).unwrap();
            assert_eq!(lens.embedding[row][0], best as u32, "{model}: embedding lens of image row {row}");
        }
        let all = g.f32("position_scores_all");
        let (n_heads, seq, off, n) = (e.head_scores[0].len(), e.sequence_length, e.image_offset, e.image_tokens);
        assert_eq!(e.head_maps.len(), e.head_scores.iter().map(Vec::len).sum::<usize>());
        for m in &e.head_maps {
            let at = (m.head.layer * n_heads + m.head.head) * seq;
            let err = max_abs(&m.patch_scores, &all[at + off..at + off + n]);
            assert!(err <= 1e-4, "{model} head {}.{}: positions vs HF, max abs error {err}", m.head.layer, m.head.head);
        }
    }
}

/// The paper's text-context condition ("TQA"): the question answered from a text before it, no
/// image. The fixtures (`--text-context` in scripts/golden/make_fixtures.py) ran transformers on
/// the same prompt without pixel values.
pub const TEXT_CONTEXT: &str = "The dog in the picture is brown and the cat next to it is black.";

#[test]
fn text_context_scores_and_every_heads_positions_match_the_authors_formulas() {
    // tiny-vicuna is a plain LlamaForCausalLM (the paper's "Vicuna TQA"), loaded without a vision
    // tower.
    for model in ["tiny-llava", "tiny-llava-qwen", "tiny-vicuna"] {
        let g = Golden::open(&format!("golden/{model}-text.safetensors"));
        let dir = data(model);
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
        let weights = Checkpoint::open(&dir).unwrap();
        let llava = pollster::block_on(Llava::load(ctx(), &weights, &config, WeightDType::F32, None)).unwrap();
        let parts = PromptParts { image: false, context: TEXT_CONTEXT };
        let prompt = tok.prompt_with(parts, "What is the color of the dog?", "The color of the dog is").unwrap();
        assert_eq!(prompt.ids, g.ids("input_ids"), "{model}: prompt ids");
        let e = pollster::block_on(explain(&llava, ctx(), &prompt, &[], &options(&g))).unwrap();
        assert_eq!(e.target.id, g.ids("explain_target")[0], "{model}: target");
        // No image: no grid, no patch map, no lens; the scores cover the text's positions.
        assert_eq!((e.grid, e.image_tokens, e.patch_scores.len(), e.sequence_length), (0, 0, 0, prompt.ids.len()), "{model}");
        assert!(e.patch_map.is_none() && e.logit_lens.is_none() && e.baseline_map.is_empty(), "{model}");
        check_scores(&e, &g, &format!("{model} text"));
        check_storage(&e, &g, &format!("{model} text"));
    }
}
