//! Inputs that must fail clearly: options out of range (never clamped), and a model whose
//! activations overflow (never an explanation of NaN).

use std::sync::OnceLock;

use llava_lens_explain::{ExplainOptions, explain};
use llava_lens_gpu::{ContextOptions, GpuContext};
use llava_lens_model::{Checkpoint, Llava, LlavaConfig, LlavaTokenizer, WeightDType};
use llava_lens_tests::golden::{data, golden};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

fn ctx() -> &'static GpuContext {
    static C: OnceLock<GpuContext> = OnceLock::new();
    C.get_or_init(|| GpuContext::new_blocking(ContextOptions::default()).unwrap_or_else(|e| panic!("explain tests need an adapter: {e}")))
}

/// The tiny model's checkpoint with one tensor scaled so that its largest value is `largest`.
fn checkpoint_scaling(name: &str, largest: f32) -> Checkpoint {
    let bytes = std::fs::read(data("tiny-llava").join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            let mut v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
            if n == name {
                let top = v.iter().fold(0f32, |m, x| m.max(x.abs()));
                v.iter_mut().for_each(|x| *x = *x / top * largest);
            }
            (n, t.shape().to_vec(), bytemuck::cast_slice(&v).to_vec())
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> =
        owned.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    let file = safetensors::tensor::serialize(views, None).unwrap();
    Checkpoint::from_files(vec![("scaled/model.safetensors".into(), file)]).unwrap()
}

fn explain_with(ckpt: &Checkpoint, opts: &ExplainOptions) -> Result<llava_lens_explain::Explanation, String> {
    let dir = data("tiny-llava");
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
    let model = pollster::block_on(Llava::load(ctx(), ckpt, &config, WeightDType::F32, None)).unwrap();
    let prompt = tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap();
    pollster::block_on(explain(&model, ctx(), &prompt, golden().f32("pixel_values"), opts)).map_err(|e| e.to_string())
}

#[test]
fn overflowing_activations_are_an_error_that_says_where_not_an_explanation_of_nan() {
    // Finite weights (the loader refuses others) whose sums overflow f32 in layer 0's MLP: the
    // residual becomes infinite, and the next norm turns it into NaN.
    let ckpt = checkpoint_scaling("language_model.model.layers.0.mlp.down_proj.weight", f32::MAX / 2.0);
    let err = explain_with(&ckpt, &ExplainOptions::default()).unwrap_err();
    assert!(
        err.starts_with("the forward pass produced non-finite values: the logits are not finite")
            && err.contains("the residual entering decoder layer 1 is the first non-finite one"),
        "{err}"
    );
    // The same model answering (no explanation) says so too, instead of an empty answer.
    let dir = data("tiny-llava");
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let tok = LlavaTokenizer::load(&dir.join("tokenizer.json"), config.image_token_index).unwrap();
    let model = pollster::block_on(Llava::load(ctx(), &ckpt, &config, WeightDType::F32, None)).unwrap();
    let prompt = tok.prompt("What is the color of the dog?", "").unwrap();
    let err = pollster::block_on(model.run(ctx(), &prompt, golden().f32("pixel_values"), &Default::default())).unwrap_err().to_string();
    assert!(err.starts_with("the forward pass produced non-finite values"), "{err}");
}

#[test]
fn options_out_of_range_are_errors_not_clamped() {
    let ckpt = Checkpoint::open(&data("tiny-llava")).unwrap();
    let cases = [
        (ExplainOptions { lens_k: 1_000_000_000, ..Default::default() }, "lens k 1000000000 is more than 100 tokens per patch"),
        (ExplainOptions { lens_layer: Some(2), ..Default::default() }, "lens layer 2 does not exist: the decoder's layers are 0..=1"),
        (ExplainOptions { decompose_layer: Some(3), decompose: vec![1], ..Default::default() }, "decompose layer 3 is outside 0..=2"),
        (ExplainOptions { decompose: vec![10_000], ..Default::default() }, "position 10000 is outside the sequence of"),
        (ExplainOptions { top_k_heads: 0, ..Default::default() }, "top-k heads must be at least 1"),
        (ExplainOptions { target: Some(u32::MAX), ..Default::default() }, "target token id 4294967295 is outside the vocabulary"),
        (ExplainOptions { contrast: Some(100_000), ..Default::default() }, "contrast token id 100000 is outside the vocabulary"),
    ];
    for (opts, want) in cases {
        let err = explain_with(&ckpt, &opts).unwrap_err();
        assert!(err.contains(want), "{err} (wanted {want})");
    }
}
