//! The attribution against the authors' formulas computed by HF transformers
//! (scripts/golden/make_fixtures.py, `attribution`): head scores, layer scores, the best head's
//! position scores and the mean-attention baseline, on the committed tiny model.

use std::sync::OnceLock;

use llava_lens_explain::{ExplainOptions, Explanation, explain};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, WeightDType};
use llava_lens_tests::golden::{data, golden};

fn ctx() -> &'static GpuContext {
    static C: OnceLock<GpuContext> = OnceLock::new();
    C.get_or_init(|| GpuContext::new_blocking(ContextOptions::default()).unwrap_or_else(|e| panic!("explain tests need an adapter: {e}")))
}

fn run(dtype: WeightDType) -> Explanation {
    run_with(dtype, &ExplainOptions::default()).unwrap()
}

fn run_with(dtype: WeightDType, opts: &ExplainOptions) -> Result<Explanation, llava_lens_explain::ExplainError> {
    let dir = data("tiny-llava");
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
    let model = pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&dir).unwrap(), &config, dtype, None)).unwrap();
    let prompt = tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap();
    pollster::block_on(explain(&model, ctx(), &prompt, golden().f32("pixel_values"), opts))
}

#[test]
fn any_head_gets_its_map_on_request() {
    let all = run_with(WeightDType::F32, &ExplainOptions { top_k_heads: usize::MAX, ..Default::default() }).unwrap();
    let n_heads = all.head_scores.iter().flatten().count();
    assert_eq!(all.head_maps.len(), n_heads);
    let worst = all.head_maps.last().unwrap().head;
    let opts = ExplainOptions {
        top_k_heads: 2,
        head_maps: vec![(worst.layer, worst.head), (all.best_head.layer, all.best_head.head)],
        ..Default::default()
    };
    let e = run_with(WeightDType::F32, &opts).unwrap();
    assert_eq!(e.head_maps.len(), 3, "the top 2, then the one head not among them");
    assert_eq!(e.head_maps[0].patch_scores, e.patch_scores, "the first map is the paper's");
    assert_eq!((e.head_maps[2].head.layer, e.head_maps[2].head.head), (worst.layer, worst.head));
    let err = max_abs(&e.head_maps[2].patch_scores, &all.head_maps.last().unwrap().patch_scores);
    assert!(err <= 1e-6, "a requested head's map is the one the ranking computes: {err}");
    let bad = run_with(WeightDType::F32, &ExplainOptions { head_maps: vec![(99, 0)], ..Default::default() }).unwrap_err().to_string();
    assert!(bad.contains("head 99.0 does not exist"), "{bad}");
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argsort_desc(v: &[f32]) -> Vec<usize> {
    let mut i: Vec<usize> = (0..v.len()).collect();
    i.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    i
}

/// Spearman's rank correlation (no ties in these continuous scores).
fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let rank = |v: &[f32]| {
        let mut r = vec![0.0; v.len()];
        for (pos, &i) in argsort_desc(v).iter().enumerate() {
            r[i] = pos as f64;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let n = a.len() as f64;
    1.0 - 6.0 * ra.iter().zip(&rb).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / (n * (n * n - 1.0))
}

#[test]
fn f32_scores_match_the_authors_formulas() {
    let e = run(WeightDType::F32);
    let g = golden();
    assert_eq!(e.target.id, g.ids("explain_target")[0], "target = top-1 next token");
    let heads: Vec<f32> = e.head_scores.iter().flatten().copied().collect();
    let checks = [
        ("head_scores", heads.clone(), g.f32("head_scores")),
        ("attention_layer_scores", e.attention_layer_scores.clone(), g.f32("attention_layer_scores")),
        ("mlp_layer_scores", e.mlp_layer_scores.clone(), g.f32("mlp_layer_scores")),
        ("position_scores", e.position_scores.clone(), g.f32("position_scores")),
        ("baseline_map", e.baseline_map.clone(), g.f32("baseline_map")),
    ];
    for (name, got, want) in checks {
        let err = max_abs(&got, want);
        eprintln!("{name}: max abs error {err:.2e}");
        assert!(err <= 1e-4, "{name}: max abs error {err}");
    }
    let n_top = heads.len().min(10);
    assert_eq!(argsort_desc(&heads)[..n_top], argsort_desc(g.f32("head_scores"))[..n_top], "top-10 head order");
    let (off, n) = (e.image_offset, e.image_tokens);
    assert_eq!(argsort_desc(&e.patch_scores), argsort_desc(&g.f32("position_scores")[off..off + n]), "patch ranking");
    let map = e.patch_map.as_ref().unwrap();
    assert!((map.iter().sum::<f32>() - 1.0).abs() < 1e-5 && map.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert_eq!(map.len(), e.grid * e.grid);
    // The explanation reads back kilobytes: log-probabilities and attention sums.
    assert!(e.bytes_read_back < 16 * 1024, "{} bytes read back", e.bytes_read_back);
}

#[test]
fn quantised_scores_stay_close() {
    let g = golden();
    let want_heads = g.f32("head_scores");
    let e32 = run(WeightDType::F32);
    for dtype in [WeightDType::Q8, WeightDType::Q4] {
        let e = run(dtype);
        let heads: Vec<f32> = e.head_scores.iter().flatten().copied().collect();
        let k = heads.len().min(10);
        let (top_a, top_b) = (&argsort_desc(&heads)[..k], &argsort_desc(want_heads)[..k]);
        let overlap = top_a.iter().filter(|i| top_b.contains(i)).count();
        let rho = spearman(&e.patch_scores, &e32.patch_scores);
        eprintln!("{}: top-{k} head overlap {overlap}/{k}, patch-map Spearman vs f32 {rho:.3}, best head {:?}", dtype.name(), e.best_head);
        assert!(overlap * 2 >= k, "{}: top-{k} overlap {overlap}", dtype.name());
    }
}

#[test]
fn scores_from_the_image_file_match_within_1e_5() {
    // The 500 x 375 image through llava-lens's own preprocessing (value for value HF's, so the
    // model sees the fixture's pixels: crates/model/tests/parity.rs), then the method.
    use llava_lens_model::preprocess::{ImageProcessor, ResizeMode, load_image, preprocess};
    let img = load_image(&data("images/scene-500x375.png")).unwrap();
    let pixels = preprocess(&img, &ImageProcessor::clip(56), ResizeMode::CenterCrop).unwrap().pixels;
    let dir = data("tiny-llava");
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
    let model = pollster::block_on(Llava::load(ctx(), &Checkpoint::open(&dir).unwrap(), &config, WeightDType::F32, None)).unwrap();
    let prompt = tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap();
    let e = pollster::block_on(explain(&model, ctx(), &prompt, &pixels, &ExplainOptions::default())).unwrap();
    let g = golden();
    let heads: Vec<f32> = e.head_scores.iter().flatten().copied().collect();
    for (name, got, want) in
        [("head_scores", &heads, g.f32("head_scores")), ("position_scores", &e.position_scores, g.f32("position_scores"))]
    {
        let err = max_abs(got, want);
        eprintln!("{name} from the image file: max abs error {err:.2e}");
        assert!(err <= 1e-5, "{name}: max abs error {err}");
    }
}
