//! `llava-lens make-tiny` then `llava-lens run`, as a user would from a clean clone.

mod common;

use std::path::PathBuf;

use common::{bin, json_of, repo, temp_dir};

#[test]
fn make_tiny_is_deterministic_and_equals_the_committed_test_model() {
    let out = temp_dir("tiny-gqa");
    let st = bin().args(["make-tiny", "--seed", "0", "--gqa", "--out"]).arg(&out).status().unwrap();
    assert!(st.success());
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let made = std::fs::read(out.join(f)).unwrap();
        let committed = std::fs::read(repo("tests/data/tiny-llava").join(f)).unwrap();
        assert!(
            made == committed,
            "{f} differs from tests/data/tiny-llava (regenerate the golden fixture if the generator changed on purpose)"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn run_answers_as_json() {
    let model = temp_dir("tiny-run");
    assert!(bin().args(["make-tiny", "--seed", "3", "--out"]).arg(&model).status().unwrap().success());
    let out = bin()
        .args([
            "run",
            "--json",
            "--max-new-tokens",
            "4",
            "--dtype",
            "q4",
            "--question",
            "What is the color of the star?",
            "--answer-prefix",
            "The color of the star is",
            "--model",
        ])
        .arg(&model)
        .arg("--image")
        .arg(repo("tests/data/images/scene-500x375.png"))
        .output()
        .unwrap();
    let v = json_of(out);
    assert_eq!(v["dtype"], "q4");
    assert_eq!(v["image_offset"], 4, "tiny tokenizer: <s> ▁USER : ▁ <image>");
    let ids = v["answer_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 4);
    let top = v["top_next_tokens"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let probs: Vec<f64> = top.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]) && probs[0] <= 1.0 && probs.iter().sum::<f64>() <= 1.0 + 1e-5, "{probs:?}");
    assert_eq!(ids[0], top[0]["id"], "greedy first token is the top-1");
    assert!(v["timings_ms"]["image_to_first_token"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_dir_all(model);
}

#[test]
fn bad_inputs_fail_with_the_file_named() {
    let model = temp_dir("tiny-bad");
    assert!(bin().args(["make-tiny", "--out"]).arg(&model).status().unwrap().success());
    let run = |image: PathBuf, question: &str| {
        let out = bin().args(["run", "--question", question, "--model"]).arg(&model).arg("--image").arg(image).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let not_image = model.join("config.json");
    let err = run(not_image.clone(), "What?");
    assert!(err.contains("config.json") && err.contains("not a PNG"), "{err}");
    let err = run(repo("tests/data/images/scene-500x375.png"), "  ");
    assert!(err.contains("question is empty"), "{err}");
    let err = run(model.join("missing.png"), "What?");
    assert!(err.contains("missing.png"), "{err}");
    let _ = std::fs::remove_dir_all(model);
}

#[test]
fn explain_writes_a_png_and_a_json_with_the_documented_fields() {
    let dir = temp_dir("explain");
    std::fs::create_dir_all(&dir).unwrap();
    let (png, json) = (dir.join("map.png"), dir.join("explanation.json"));
    let out = bin()
        .args([
            "explain",
            "--crisp",
            "--top-k-heads",
            "3",
            "--lens-layer",
            "1",
            "--decompose",
            "3,20",
            "--question",
            "What is the color of the dog?",
            "--answer-prefix",
            "The color of the dog is",
            "--model",
        ])
        .arg(repo("tests/data/tiny-llava"))
        .arg("--image")
        .arg(repo("tests/data/images/scene-500x375.png"))
        .arg("--out")
        .arg(&png)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).unwrap();
    assert_eq!(img.height(), 56, "drawn over the model's 56 x 56 view");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "llava-lens.explanation/1");
    let grid = v["grid"].as_u64().unwrap() as usize;
    let heads = v["head_scores"].as_array().unwrap();
    assert_eq!(heads.len(), 2, "layers");
    assert!(heads.iter().all(|row| row.as_array().unwrap().len() == 4), "heads per layer");
    let map: Vec<f64> = v["patch_map"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(map.len(), grid * grid);
    assert!(map.iter().all(|x| x.is_finite()));
    assert_eq!(v["baseline_map"].as_array().unwrap().len(), grid * grid);
    assert_eq!(v["top_k_heads_map"]["k"], 3);
    assert!(v["target"]["log_prob"].as_f64().unwrap() < 0.0);
    // The model's top 5 from the explanation's own forward pass, best first, named.
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    assert_eq!(top[0]["id"], v["prediction"]);
    let lps: Vec<f64> = top.iter().map(|t| t["log_prob"].as_f64().unwrap()).collect();
    assert!(lps.windows(2).all(|w| w[0] >= w[1]) && lps[0] <= 0.0, "{lps:?}");
    assert!(top.iter().all(|t| t["text"].is_string()));
    if v["target"]["id"] == v["prediction"] {
        assert!((lps[0] - v["target"]["log_prob"].as_f64().unwrap()).abs() < 1e-4, "top-1 and target log-probabilities differ");
    }
    assert!(v["bytes_read_back"].as_u64().unwrap() < 16 * 1024);
    let lens = &v["logit_lens"];
    assert_eq!(lens["embedding"].as_array().unwrap().len(), grid * grid);
    assert_eq!(lens["residual"].as_array().unwrap()[0].as_array().unwrap().len(), 5);
    assert_eq!(lens["residual_layer"], 1);
    assert!(v["logit_lens_text"]["embedding"][0][0].is_string());
    let dec = v["decomposition"].as_array().unwrap();
    assert_eq!(dec.iter().map(|d| d["position"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 20]);
    assert!(dec.iter().all(|d| d["key_input_top"].as_array().unwrap().len() == 5 && d["layer"] == 2));
    for key in ["crop", "legend", "position_scores", "attention_layer_scores", "mlp_layer_scores", "top_heads", "best_head", "timings_ms"] {
        assert!(!v[key].is_null(), "missing {key}");
    }
    // A contrast by text, and a target that is not a single token, fail or succeed clearly.
    let out = bin()
        .args(["explain", "--target", "red", "--contrast", "blue", "--question", "What color?", "--model"])
        .arg(repo("tests/data/tiny-llava"))
        .arg("--image")
        .arg(repo("tests/data/images/scene-500x375.png"))
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    let v = json_of(out);
    assert_eq!(v["target"]["text"], "▁red");
    assert_eq!(v["contrast"]["text"], "▁blue");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn faithfulness_reports_curves_for_the_map_mean_attention_and_random_orders() {
    let out = bin()
        .args(["faithfulness", "--steps", "4", "--seeds", "2", "--question", "What is the color of the dog?", "--model"])
        .arg(repo("tests/data/tiny-llava"))
        .arg("--image")
        .arg(repo("tests/data/images/scene-500x375.png"))
        .output()
        .unwrap();
    let v = json_of(out);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.iter().map(|r| r["operator"].as_str().unwrap()).collect::<Vec<_>>(), ["token", "pixel", "knockout"]);
    for r in results {
        for curve in [&r["map"], &r["mean_attention"]] {
            let del: Vec<f64> = curve["deletion"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let ins: Vec<f64> = curve["insertion"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!((del.len(), ins.len()), (5, 5), "steps + 1 points");
            // Both curves run between the same two ends: nothing removed and everything removed.
            assert_eq!((del[0], del[4]), (r["s_orig"].as_f64().unwrap(), r["s_base"].as_f64().unwrap()));
            assert_eq!((ins[0], ins[4]), (del[4], del[0]));
            assert!(del.iter().chain(&ins).all(|p| (0.0..=1.0).contains(p)));
        }
        assert_eq!(r["random"].as_array().unwrap().len(), 2);
    }
}

/// `explain --json` on a committed model folder as a clean clone has it; the JSON it wrote.
fn explain_json(model: &str, image: &str) -> serde_json::Value {
    let out = temp_dir(&format!("{model}-explain"));
    std::fs::create_dir_all(&out).unwrap();
    let st = bin()
        .current_dir(repo(""))
        .args(["explain", "--model", &format!("tests/data/{model}"), "--image", &format!("tests/data/images/{image}.png")])
        .args(["--question", "What is the color of the dog?", "--answer-prefix", "The color of the dog is", "--out"])
        .arg(out.join("map.png"))
        .arg("--json")
        .arg(out.join("e.json"))
        .output()
        .unwrap();
    assert!(st.status.success(), "{model}: {}", String::from_utf8_lossy(&st.stderr));
    assert!(image::open(out.join("map.png")).is_ok(), "{model}: map.png");
    let v = serde_json::from_str(&std::fs::read_to_string(out.join("e.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(out);
    v
}

#[test]
fn explain_runs_on_every_family_variant_from_the_committed_folder() {
    // Each folder as transformers wrote it: its config and weights, its preprocessor_config.json
    // where it has one (SigLIP's square resize), its tokenizer (LLaMA's, or Qwen's byte-level
    // BPE with the ChatML template). The explanation must be HF's: the same target and best
    // head as the golden fixture, on the same image, and the grid the tower makes.
    for (model, image, grid) in [
        ("tiny-llava-siglip", "tall-301x689", 5),
        ("tiny-llava-mistral", "wide-alpha-640x233", 4),
        ("tiny-llava-qwen", "small-97x61", 5),
        ("tiny-llava-layers", "tall-301x689", 4),
    ] {
        let v = explain_json(model, image);
        let g = llava_lens_tests::golden::Golden::open(&format!("golden/{model}.safetensors"));
        assert_eq!(v["target"]["id"], g.ids("explain_target")[0], "{model}: target");
        let scores = g.f32("head_scores");
        let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        let heads = v["head_scores"][0].as_array().unwrap().len();
        assert_eq!(
            (v["best_head"]["layer"].as_u64().unwrap() as usize, v["best_head"]["head"].as_u64().unwrap() as usize),
            (best / heads, best % heads),
            "{model}: best head"
        );
        assert_eq!((v["grid"].as_u64(), v["patch_scores"].as_array().unwrap().len()), (Some(grid), (grid * grid) as usize), "{model}");
        if model == "tiny-llava-siglip" {
            // SigLIP resizes the whole 301 x 689 image to 64 x 64; the 5 x 5 patches of 12 px
            // cover 60 of those 64 pixels, so the map's box is 60/64 of the image from its
            // top-left corner.
            let crop = &v["crop"];
            let side = |k: &str| crop[k].as_f64().unwrap();
            assert_eq!((side("x"), side("y"), side("width"), side("height")), (0.0, 0.0, 301.0 * 60.0 / 64.0, 689.0 * 60.0 / 64.0));
        }
    }
}
