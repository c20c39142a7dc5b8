//! Loading checkpoints as they exist in the wild, and failing clearly on broken ones.

use std::path::{Path, PathBuf};

use llava_lens_model::{Checkpoint, LlavaConfig, ModelError};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tiny-llava")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llava-lens-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(tiny().join("config.json"), d.join("config.json")).unwrap();
    d
}

/// Rewrites the tiny model's tensors through `rename` into `files` shards (names round-robin).
fn rewrite(dir: &Path, shards: usize, rename: impl Fn(&str) -> String) {
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut weight_map = serde_json::Map::new();
    for s in 0..shards {
        let file = if shards == 1 { "model.safetensors".to_string() } else { format!("model-{:05}-of-{shards:05}.safetensors", s + 1) };
        let part: Vec<(String, TensorView<'_>)> = tensors.iter().skip(s).step_by(shards).map(|(n, t)| (rename(n), t.clone())).collect();
        for (n, _) in &part {
            weight_map.insert(n.clone(), file.clone().into());
        }
        std::fs::write(dir.join(&file), safetensors::tensor::serialize(part, None).unwrap()).unwrap();
    }
    if shards > 1 {
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }
}

fn all_tensors(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let ckpt = Checkpoint::open(dir).unwrap();
    let names = [
        "vision_tower.vision_model.encoder.layers.1.mlp.fc2.weight",
        "language_model.model.layers.1.self_attn.k_proj.weight",
        "language_model.lm_head.weight",
        "multi_modal_projector.linear_2.bias",
    ];
    let t = &config.text;
    let shapes =
        [vec![32, 64], vec![t.num_key_value_heads * t.head_dim, t.hidden_size], vec![t.vocab_size, t.hidden_size], vec![t.hidden_size]];
    names.iter().zip(shapes).map(|(n, s)| (n.to_string(), ckpt.f32(n, &s).unwrap())).collect()
}

#[test]
fn sharded_and_renamed_checkpoints_load_the_same_tensors() {
    let reference = all_tensors(&tiny());
    // transformers 4.5x save_pretrained names, in three shards.
    let v45 = temp_dir("v45");
    rewrite(&v45, 3, |n| {
        if n == "language_model.lm_head.weight" {
            "lm_head.weight".into()
        } else if let Some(r) = n.strip_prefix("language_model.model.") {
            format!("model.language_model.{r}")
        } else {
            format!("model.{n}")
        }
    });
    assert_eq!(all_tensors(&v45), reference);
    // transformers 5.24 names (no vision_model.), one file.
    let v5 = temp_dir("v5");
    rewrite(&v5, 1, |n| n.replace("vision_tower.vision_model.", "vision_tower."));
    assert_eq!(all_tensors(&v5), reference);
    let _ = (std::fs::remove_dir_all(v45), std::fs::remove_dir_all(v5));
}

#[test]
fn bf16_and_f16_checkpoints_load_as_f32() {
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for dtype in [Dtype::BF16, Dtype::F16] {
        let dir = temp_dir(&format!("{dtype:?}"));
        let converted: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                let v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
                let b: Vec<u8> = match dtype {
                    Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
                    _ => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                };
                (n, t.shape().to_vec(), b)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> =
            converted.iter().map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap())).collect();
        std::fs::write(dir.join("model.safetensors"), safetensors::tensor::serialize(views, None).unwrap()).unwrap();
        let reference = all_tensors(&tiny());
        for ((name, got), (_, want)) in all_tensors(&dir).iter().zip(&reference) {
            let tol = if dtype == Dtype::BF16 { 1.0 / 128.0 } else { 1.0 / 1024.0 };
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= tol * w.abs().max(1e-3), "{dtype:?} {name}: {g} vs {w}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn open_err(dir: &Path) -> String {
    Checkpoint::open(dir).unwrap_err().to_string()
}

#[test]
fn broken_checkpoints_are_clear_errors() {
    let full = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let dir = temp_dir("broken");
    let st = dir.join("model.safetensors");

    std::fs::write(&st, &full[..full.len() - 100]).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("model.safetensors: not a valid safetensors file") && e.contains("truncated"), "truncated: {e}");

    let mut huge = full.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&st, &huge).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("not a valid safetensors file") && e.contains("does not fit a file of"), "header larger than the file: {e}");

    let mut claims_more = full.clone();
    claims_more[..8].copy_from_slice(&(full.len() as u64 + 10).to_le_bytes());
    std::fs::write(&st, &claims_more).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("does not fit a file of"), "header claims more than the file holds: {e}");

    std::fs::write(&st, b"tiny").unwrap();
    assert!(open_err(&dir).contains("8-byte header length"));

    std::fs::remove_file(&st).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("model.safetensors") && e.contains("no model.safetensors and no model.safetensors.index.json"), "{e}");

    rewrite(&dir, 2, |n| n.to_string());
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("model-00002-of-00002.safetensors") && e.contains("missing"), "missing shard: {e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_and_weights_that_disagree_name_the_tensor() {
    let dir = temp_dir("mismatch");
    std::fs::copy(tiny().join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap().replace("\"intermediate_size\": 128", "\"intermediate_size\": 96");
    std::fs::write(dir.join("config.json"), text).unwrap();
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&dir).unwrap();
    let ctx = llava_lens_gpu::GpuContext::new_blocking(Default::default()).unwrap();
    let err =
        pollster::block_on(llava_lens_model::Llava::load(&ctx, &ckpt, &config, llava_lens_model::WeightDType::F32, None)).unwrap_err();
    assert!(matches!(err, ModelError::Tensor { .. }), "{err}");
    let e = err.to_string();
    assert!(
        e.contains("model.safetensors: tensor language_model.model.layers.0.mlp.gate_proj.weight: expected shape [96, 64]")
            && e.contains("found shape [128, 64]"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_progress_total_is_the_number_of_tensors_a_load_reports() {
    let ctx = llava_lens_gpu::GpuContext::new_blocking(Default::default()).unwrap();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/scenes-tiny");
    let (siglip, qwen) = (tiny().with_file_name("tiny-llava-siglip"), tiny().with_file_name("tiny-llava-qwen"));
    for dir in [tiny(), demo, siglip, qwen, tiny().with_file_name("tiny-llava-layers"), tiny().with_file_name("tiny-vicuna")] {
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        let ckpt = Checkpoint::open(&dir).unwrap();
        let ticks = std::cell::Cell::new(0usize);
        let tick = |_: &str| ticks.set(ticks.get() + 1);
        pollster::block_on(llava_lens_model::Llava::load(&ctx, &ckpt, &config, llava_lens_model::WeightDType::Q4, Some(&tick))).unwrap();
        assert_eq!(llava_lens_model::Llava::tensor_count(&config), ticks.get(), "{}", dir.display());
    }
}

/// The files of a folder as the browser reads them: names, sizes and bytes, in index order.
fn folder_files(dir: &Path) -> (Vec<(PathBuf, u64)>, Vec<Vec<u8>>) {
    let index = dir.join("model.safetensors.index.json");
    let names = match std::fs::read_to_string(&index) {
        Ok(text) => llava_lens_model::checkpoint::header::shard_files(&index, &text).unwrap(),
        Err(_) => vec!["model.safetensors".to_string()],
    };
    let bytes: Vec<Vec<u8>> = names.iter().map(|n| std::fs::read(dir.join(n)).unwrap()).collect();
    (names.iter().zip(&bytes).map(|(n, b)| (dir.join(n), b.len() as u64)).collect(), bytes)
}

#[test]
fn a_streamed_sharded_checkpoint_gives_the_same_tensors_and_model() {
    use llava_lens_model::checkpoint::StreamedCheckpoint;
    use llava_lens_model::{Llava, WeightDType, WeightSource};
    let dir = temp_dir("streamed");
    rewrite(&dir, 3, |n| n.replace("language_model.model.", "model.language_model.").replace("language_model.lm_head", "lm_head"));
    let (files, bytes) = folder_files(&dir);
    assert_eq!(files.len(), 3);
    let streamed = pollster::block_on(StreamedCheckpoint::open(bytes, &files)).unwrap();
    let mapped = Checkpoint::open(&tiny()).unwrap();
    assert_eq!(streamed.names(), mapped.names());
    for name in mapped.names() {
        let shape = mapped.raw(&name).unwrap().shape.to_vec();
        assert_eq!(pollster::block_on(streamed.f32(&name, &shape)).unwrap(), mapped.f32(&name, &shape).unwrap(), "{name}");
    }
    let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let ctx = llava_lens_gpu::GpuContext::new_blocking(Default::default()).unwrap();
    for dtype in [WeightDType::F32, WeightDType::Q4] {
        let a = pollster::block_on(Llava::load(&ctx, &streamed, &config, dtype, None)).unwrap();
        let b = pollster::block_on(Llava::load(&ctx, &mapped, &config, dtype, None)).unwrap();
        assert_eq!(a.weight_bytes, b.weight_bytes);
        assert_eq!(Llava::weight_bytes_estimate(&config, dtype).0, a.weight_bytes, "the estimate is the load's own count");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_weight_estimate_matches_the_demo_and_siglip_model_loads() {
    use llava_lens_model::{Llava, WeightDType};
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/scenes-tiny");
    let ctx = llava_lens_gpu::GpuContext::new_blocking(Default::default()).unwrap();
    // The Qwen variant's lm_head is its embeddings: counted once. The layers variant's linear_1
    // is three column blocks.
    let variants = ["tiny-llava-siglip", "tiny-llava-qwen", "tiny-llava-layers"].map(|v| tiny().with_file_name(v));
    for dir in std::iter::once(demo).chain(variants) {
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        let ckpt = Checkpoint::open(&dir).unwrap();
        for dtype in [WeightDType::F32, WeightDType::F16, WeightDType::Q8, WeightDType::Q4] {
            let m = pollster::block_on(Llava::load(&ctx, &ckpt, &config, dtype, None)).unwrap();
            let (total, largest) = Llava::weight_bytes_estimate(&config, dtype);
            assert_eq!(total, m.weight_bytes, "{} {dtype:?}", dir.display());
            assert!(largest > 0 && largest < total);
        }
    }
}

#[test]
fn a_truncated_shard_is_named_before_any_tensor_is_read() {
    use llava_lens_model::checkpoint::StreamedCheckpoint;
    let (mut files, mut bytes) = folder_files(&tiny());
    let cut = bytes[0].len() - 100;
    bytes[0].truncate(cut);
    files[0].1 = cut as u64;
    let e = pollster::block_on(StreamedCheckpoint::open(bytes, &files)).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");
}

#[test]
fn a_non_finite_weight_is_named_with_its_tensor_and_file() {
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let victim = "language_model.model.layers.1.self_attn.k_proj.weight";
    for (bad, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let dir = temp_dir("nan");
        let owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                let mut data = t.data().to_vec();
                if n == victim {
                    data[4 * 37..4 * 38].copy_from_slice(&bad.to_le_bytes());
                }
                (n, t.shape().to_vec(), data)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> =
            owned.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
        std::fs::write(dir.join("model.safetensors"), safetensors::tensor::serialize(views, None).unwrap()).unwrap();
        let config = LlavaConfig::load(&dir.join("config.json")).unwrap();
        let ckpt = Checkpoint::open(&dir).unwrap();
        let ctx = llava_lens_gpu::GpuContext::new_blocking(Default::default()).unwrap();
        let err = pollster::block_on(llava_lens_model::Llava::load(&ctx, &ckpt, &config, llava_lens_model::WeightDType::Q4, None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("model.safetensors: tensor {victim}: expected finite values, found {shown} at element 37"))
                && err.contains("the checkpoint holds non-finite values"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_config_claiming_sizes_the_file_lacks_fails_before_gpu_memory_is_allocated_for_them() {
    // A vocabulary of 2^20 makes embed_tokens a 256 MB f32 matrix: the stored 64-row tensor must
    // be found wrong before any of it is allocated.
    let dir = temp_dir("claims");
    std::fs::copy(tiny().join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut config = LlavaConfig::load(&dir.join("config.json")).unwrap();
    let vocab = config.text.vocab_size;
    config.text.vocab_size = 1 << 20;
    let ckpt = Checkpoint::open(&dir).unwrap();
    let ctx = llava_lens_gpu::GpuContext::new_blocking(Default::default()).unwrap();
    let err =
        pollster::block_on(llava_lens_model::Llava::load(&ctx, &ckpt, &config, llava_lens_model::WeightDType::F32, None)).unwrap_err();
    let e = err.to_string();
    assert!(e.contains("embed_tokens.weight: expected shape [1048576, 64]") && e.contains(&format!("found shape [{vocab}, 64]")), "{e}");
    let peak = ctx.memory().peak();
    assert!(peak < 16 << 20, "{peak} bytes were allocated on the GPU before the shape was checked");
    let _ = std::fs::remove_dir_all(dir);
}
