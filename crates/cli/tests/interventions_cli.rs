//! `ablate`, `patch`, `answer` and `eval ablation` as a user runs them: the bundled demo model on
//! a held-out scene, and the tiny HF-made Llava (tests/data/tiny-llava) with two images.

mod common;

use common::{bin, json_of, repo, temp_dir};
use llava_lens_scenes::{SceneSpec, generate};
use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn tiny(cmd: &str) -> std::process::Command {
    let mut c = bin();
    c.args([cmd, "--model"])
        .arg(repo("tests/data/tiny-llava"))
        .args(["--question", "What is the color of the dog?", "--answer-prefix", "The color of the dog is", "--image"])
        .arg(repo("tests/data/images/scene-500x375.png"));
    c
}

fn stderr_of(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(!out.status.success(), "expected a failure; stdout {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Held-out scene 0 (seed 12345) saved in a fresh folder, and its first present-object question.
struct DemoScene {
    dir: std::path::PathBuf,
    image: std::path::PathBuf,
    scene: llava_lens_scenes::Scene,
    q: llava_lens_scenes::Question,
}

impl DemoScene {
    fn new(name: &str) -> DemoScene {
        let dir = temp_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        let scene = generate(12345, 0, &SceneSpec::default());
        let image = dir.join("scene.png");
        scene.image.save(&image).unwrap();
        let q = scene.questions.iter().find(|q| q.object.is_some()).unwrap().clone();
        DemoScene { dir, image, scene, q }
    }

    /// `llava-lens CMD` on the scene and its question.
    fn cmd(&self, cmd: &str) -> std::process::Command {
        let mut c = bin();
        c.args([cmd, "--question", &self.q.question, "--answer-prefix", &self.q.answer_prefix, "--image"]).arg(&self.image);
        c
    }
}

impl Drop for DemoScene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ablating_the_demo_models_top_head_and_top_patches_removes_the_answer() {
    let d = DemoScene::new("ablate");
    let (q, base) = (&d.q, || d.cmd("ablate"));
    let v = json_of(base().args(["--top-heads", "1", "--knockout-top", "4", "--mode", "mean"]).output().unwrap());
    assert_eq!(v["schema"], "llava-lens.intervention/1");
    assert_eq!(v["kind"], "ablation");
    let h = &v["heads"];
    assert_eq!(h["before"]["target"]["text"].as_str().unwrap(), format!("▁{}", q.answer), "the model answers right");
    let (p0, p1) = (f(&h["before"]["target"]["log_prob"]).exp(), f(&h["after"]["target"]["log_prob"]).exp());
    assert!(p1 < p0 / 2.0, "mean-ablating the paper's top head halves p(correct) at least: {p0} -> {p1}");
    let k = &v["knockout"];
    assert_eq!(k["patches"].as_array().unwrap().len(), 4);
    assert!(f(&k["after"]["target"]["log_prob"]) < f(&k["before"]["target"]["log_prob"]), "the top patches carry the answer");
    // The same head named by hand gives the same numbers.
    let best = &h["heads"][0];
    let by_hand = json_of(base().args(["--heads", &format!("{}.{}", best[0], best[1]), "--mode", "mean"]).output().unwrap());
    assert_eq!(by_hand["heads"]["after"], h["after"]);
    let err = stderr_of(base().args(["--heads", "9.0"]));
    assert!(err.contains("head 9.0 does not exist"), "{err}");
    let err = stderr_of(base().args(["--knockout-patches", "4000"]));
    assert!(err.contains("patch 4000 does not exist"), "{err}");
    let err = stderr_of(&mut base());
    assert!(err.contains("nothing to ablate"), "{err}");
}

#[test]
fn the_head_deletion_curve_compares_the_papers_order_with_random_ones() {
    let v = json_of(tiny("ablate").args(["--curve", "--steps", "4", "--seeds", "3"]).output().unwrap());
    let c = &v["curve"];
    assert_eq!(c["heads"], 8, "2 layers of 4 heads");
    let paper = c["paper"]["probs"].as_array().unwrap();
    assert_eq!(paper.len(), 5);
    assert_eq!(c["paper"]["removed"], serde_json::json!([0, 2, 4, 6, 8]));
    assert!((f(&paper[0]) - f(&c["s_orig"])).abs() < 1e-7);
    assert_eq!(c["random"].as_array().unwrap().len(), 3);
    // Every order removes every head at the end: the same model, the same probability.
    let end = f(paper.last().unwrap());
    for r in c["random"].as_array().unwrap() {
        assert!((f(r["probs"].as_array().unwrap().last().unwrap()) - end).abs() < 1e-5, "all heads removed is one model");
    }
}

#[test]
fn patching_grids_have_a_cell_per_layer_and_position() {
    let v = json_of(
        tiny("patch")
            .arg("--corrupt-image")
            .arg(repo("tests/data/images/tall-301x689.png"))
            .args(["--positions", "image", "--contrast", "100"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["kind"], "patching");
    let p = &v["patching"];
    let positions = p["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 16, "the tiny model's 4 x 4 patches");
    assert_eq!(f(&positions[0]) as u64, p["image_offset"].as_u64().unwrap());
    assert_eq!(p["resid"].as_array().unwrap().len(), 2);
    assert!(p["resid"].as_array().unwrap().iter().all(|r| r.as_array().unwrap().len() == 16));
    assert!(p["heads"].as_array().unwrap().iter().all(|r| r.as_array().unwrap().len() == 4));
    // The random tiny model answers the same for both images: the contrast is given.
    assert_eq!(p["contrast"], 100);
    assert_eq!(p["target"], p["clean"]["top"][0]["id"]);
    // Patching every image position of layer 0 at once would restore the clean run; one at a
    // time, each restores part of it.
    let sum: f64 = p["resid"][0].as_array().unwrap().iter().map(f).sum();
    assert!(sum.abs() > 1e-3, "the image positions carry the difference: {sum}");
    let err = stderr_of(&mut tiny("patch"));
    assert!(err.contains("must differ"), "{err}");
    let err = stderr_of(tiny("patch").args(["--corrupt-question", "What is the color of the big brown dog on the left?"]));
    assert!(err.contains("pairs positions one to one"), "{err}");
    let err =
        stderr_of(tiny("patch").arg("--corrupt-image").arg(repo("tests/data/images/tall-301x689.png")).args(["--positions", "5,999"]));
    assert!(err.contains("999 is outside the sequence"), "{err}");
}

#[test]
fn every_answer_token_gets_its_own_explanation() {
    let v = json_of(tiny("answer").args(["--max-tokens", "3"]).output().unwrap());
    assert_eq!(v["kind"], "answer");
    let a = &v["answer"];
    let tokens = a["tokens"].as_array().unwrap();
    let ex = a["explanations"].as_array().unwrap();
    assert_eq!(ex.len(), tokens.len());
    assert!(!tokens.is_empty());
    let prompt = ex[0]["prompt_ids"].as_array().unwrap().clone();
    for (i, e) in ex.iter().enumerate() {
        assert_eq!(e["target"]["id"], tokens[i]);
        let ids = e["prompt_ids"].as_array().unwrap();
        assert_eq!(ids.len(), prompt.len() + i, "token {i} is explained after the prompt and the {i} tokens before it");
        assert_eq!(&ids[prompt.len()..], &tokens[..i]);
    }
    assert!(a["text"].is_string());
}

#[test]
fn zooming_crops_to_the_maps_window_and_to_random_ones() {
    let d = DemoScene::new("zoom");
    let (q, image, scene, dir, base) = (&d.q, &d.image, &d.scene, &d.dir, || d.cmd("zoom"));
    let v = json_of(base().args(["--zoom", "0.5", "--seeds", "3"]).output().unwrap());
    assert_eq!(v["kind"], "zoom");
    let grid = v["grid"].as_u64().unwrap() as usize;
    let w = &v["map"]["window"];
    let side = w["side"].as_u64().unwrap() as usize;
    assert_eq!(side, grid / 2);
    // The map's window holds the explanation's best patch.
    let e = json_of(
        bin()
            .args(["explain", "--question", &q.question, "--answer-prefix", &q.answer_prefix, "--lens-k", "0", "--out"])
            .arg(dir.join("m.png"))
            .arg("--image")
            .arg(image)
            .output()
            .unwrap(),
    );
    let scores: Vec<f64> = e["patch_scores"].as_array().unwrap().iter().map(f).collect();
    let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
    let (row, col) = (w["row"].as_u64().unwrap() as usize, w["col"].as_u64().unwrap() as usize);
    assert!((row..row + side).contains(&(best / grid)) && (col..col + side).contains(&(best % grid)), "window {w} holds patch {best}");
    let crop = &v["map"]["crop"];
    assert!(f(&crop["x"]) >= 0.0 && f(&crop["x"]) + f(&crop["width"]) <= scene.image.width() as f64 + 1e-3, "{crop}");
    assert!((f(&crop["width"]) - scene.image.width() as f64 / 2.0).abs() < 1e-3, "half the side: {crop}");
    assert_eq!(v["random"].as_array().unwrap().len(), 3);
    let err = stderr_of(base().args(["--zoom", "1.5"]));
    assert!(err.contains("--zoom 1.5 is not a share"), "{err}");
}

#[test]
fn the_held_out_evaluations_of_ablation_and_zoom_run_on_a_few_scenes() {
    let v = json_of(bin().args(["eval", "ablation", "--n", "2", "--seeds", "2", "--mode", "zero"]).output().unwrap());
    let r = &v["results"][0];
    assert_eq!(r["mode"], "zero");
    assert_eq!(r["scenes"], 2);
    assert_eq!(r["by_head"].as_array().unwrap().len(), 4, "the demo model's 4 heads");
    let tops: u64 = r["by_head"].as_array().unwrap().iter().map(|h| h["top_head_in"].as_u64().unwrap()).sum();
    assert_eq!(tops, 2, "one top head per scene");
    assert!(f(&r["drop_top_head"]["mean"]) <= f(&r["p_correct"]["mean"]) + 1e-9, "a drop is at most the probability");
    let z = json_of(bin().args(["eval", "zoom", "--n", "2", "--seeds", "2"]).output().unwrap());
    assert_eq!(z["window_patches"], 6);
    assert_eq!(f(&z["random_window"]["n"]), 4.0);
    assert!(f(&z["map_window"]["window_on_object"]) >= 0.5, "the map's window holds the asked object: {}", z["map_window"]);
}

#[test]
fn mean_ablation_over_a_file_of_examples() {
    let dir = temp_dir("mean-over");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = generate(12345, 0, &SceneSpec::default());
    scene.image.save(dir.join("scene.png")).unwrap();
    let q = scene.questions.iter().find(|q| q.object.is_some()).unwrap();
    let row = |image: &str| serde_json::json!({"image": image, "question": q.question, "answer_prefix": q.answer_prefix}).to_string();
    let ablate = |extra: &[&str]| {
        let mut c = bin();
        c.args(["ablate", "--heads", "2.0", "--question", &q.question, "--answer-prefix", &q.answer_prefix, "--image"])
            .arg(dir.join("scene.png"))
            .args(extra);
        c
    };
    let own = json_of(ablate(&["--mode", "mean"]).output().unwrap());
    // A file of the same example (twice) and a row whose image is missing: the mean over it is
    // the prompt's own mean, so the answers agree.
    std::fs::write(dir.join("same.jsonl"), format!("{}\n{}\n{}\n", row("scene.png"), row("missing.png"), row("scene.png"))).unwrap();
    let out = ablate(&["--mode", "mean", "--mean-over"]).arg(dir.join("same.jsonl")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let same = json_of(out);
    assert_eq!(same["mean_over"]["examples"], 2);
    assert!(stderr.contains("skipping") && stderr.contains("missing.png"), "{stderr}");
    let (a, b) = (f(&own["heads"]["after"]["target"]["log_prob"]), f(&same["heads"]["after"]["target"]["log_prob"]));
    assert!((a - b).abs() < 1e-5, "the mean over copies of the prompt is its own mean: {a} vs {b}");
    // Other scenes give another mean, so another answer.
    let other = generate(12345, 1, &SceneSpec::default());
    other.image.save(dir.join("other.png")).unwrap();
    std::fs::write(dir.join("other.jsonl"), row("other.png") + "\n").unwrap();
    let o = json_of(ablate(&["--mode", "mean", "--mean-over"]).arg(dir.join("other.jsonl")).output().unwrap());
    assert!((f(&o["heads"]["after"]["target"]["log_prob"]) - a).abs() > 1e-4, "another scene's mean is another fill");
    std::fs::write(dir.join("none.jsonl"), row("missing.png") + "\n").unwrap();
    let err = stderr_of(ablate(&["--mode", "mean", "--mean-over"]).arg(dir.join("none.jsonl")));
    assert!(err.contains("no example could be run"), "{err}");
    let err = stderr_of(ablate(&["--mean-over"]).arg(dir.join("same.jsonl")));
    assert!(err.contains("add --mode mean"), "{err}");
}

/// A photo that is not from the generator (500 x 375), on a model that is not the demo's: the
/// window lies inside the part of the photo the model sees (the centre crop).
#[test]
fn zooming_a_photo_stays_inside_the_models_view() {
    let v = json_of(tiny("zoom").args(["--zoom", "0.5", "--seeds", "2"]).output().unwrap());
    // The part of the photo the model sees, as explain reports it (about 378 x 375 in the middle
    // of 500 x 375: the resize rounds to whole pixels).
    let dir = temp_dir("zoom-photo");
    std::fs::create_dir_all(&dir).unwrap();
    let e = json_of(tiny("explain").args(["--lens-k", "0", "--out"]).arg(dir.join("m.png")).output().unwrap());
    let _ = std::fs::remove_dir_all(dir);
    let view = &e["crop"];
    let (x0, w, h) = (f(&view["x"]), f(&view["width"]), f(&view["height"]));
    assert!(x0 > 50.0 && w < 400.0, "a centre crop of the wide photo: {view}");
    for z in std::iter::once(&v["map"]).chain(v["random"].as_array().unwrap()) {
        let c = &z["crop"];
        assert!(f(&c["x"]) >= x0 - 1e-3 && f(&c["x"]) + f(&c["width"]) <= x0 + w + 1e-3, "{c} inside {view}");
        assert!(f(&c["y"]) >= -1e-3 && f(&c["y"]) + f(&c["height"]) <= h + 1e-3, "{c} inside {view}");
        assert!((f(&c["width"]) - w / 2.0).abs() < 1e-3 && (f(&c["height"]) - h / 2.0).abs() < 1e-3, "half the view's sides: {c}");
    }
}

/// `batch --zoom` on generated scenes: each line's map window answers as `llava-lens zoom` does
/// on the same example, and the report's zoom accuracies are the lines' own counts.
#[test]
fn batch_zoom_lines_match_the_zoom_command_and_the_report_counts_them() {
    let dir = temp_dir("batch-zoom");
    let st = bin().args(["scenes", "--n", "2", "--seed", "12345", "--out"]).arg(&dir).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let all = std::fs::read_to_string(dir.join("examples.jsonl")).unwrap();
    let kept: Vec<&str> = all.lines().filter(|l| l.contains("\"color\"")).take(3).collect();
    std::fs::write(dir.join("subset.jsonl"), kept.join("\n") + "\n").unwrap();
    let st = bin()
        .current_dir(&dir)
        .args(["batch", "--examples", "subset.jsonl", "--out", "out.jsonl", "--lens-k", "0", "--zoom", "0.5", "--zoom-seeds", "2"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let out: Vec<Value> =
        std::fs::read_to_string(dir.join("out.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out.len(), kept.len());
    let word = |v: &Value| v.as_str().unwrap().trim_start_matches(['▁', 'Ġ']).trim().to_lowercase();
    let (mut right_map, mut right_random, mut answered) = (0.0, 0.0, 0.0);
    for l in &out {
        let z = &l["zoom"];
        assert_eq!((f(&z["fraction"]), z["window_patches"].as_u64()), (0.5, Some(6)), "{z}");
        assert_eq!(z["random"].as_array().unwrap().len(), 2);
        assert_eq!(z["before"]["target"]["id"], l["target"]["id"], "the explained token is the target");
        let answer = l["example"]["answer"].as_str().expect("scene questions carry their answer").to_lowercase();
        answered += 1.0;
        right_map += (word(&z["map"]["outcome"]["top"][0]["text"]) == answer) as u8 as f64;
        let r = z["random"].as_array().unwrap();
        right_random += r.iter().filter(|r| word(&r["outcome"]["top"][0]["text"]) == answer).count() as f64 / r.len() as f64;
    }
    // The first line against the zoom command on the same example.
    let e: Value = serde_json::from_str(kept[0]).unwrap();
    let v = json_of(
        bin()
            .args(["zoom", "--zoom", "0.5", "--seeds", "1"])
            .args(["--question", e["question"].as_str().unwrap(), "--answer-prefix", e["answer_prefix"].as_str().unwrap(), "--image"])
            .arg(dir.join(e["image"].as_str().unwrap()))
            .output()
            .unwrap(),
    );
    let z = &out[0]["zoom"];
    assert_eq!(v["map"]["window"], z["map"]["window"]);
    let (a, b) = (f(&v["map"]["outcome"]["target"]["log_prob"]), f(&z["map"]["outcome"]["target"]["log_prob"]));
    assert!((a - b).abs() < 1e-5, "the map window's answer: zoom {a}, batch {b}");

    let st = bin().current_dir(&dir).args(["report", "out.jsonl", "--out", "report"]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap()).unwrap();
    let s = &r["summary"]["zoom"];
    assert_eq!(s["answered"], 3);
    assert!((f(&s["accuracy_map_window"]) - right_map / answered).abs() < 1e-9, "{s}");
    assert!((f(&s["accuracy_random_window"]) - right_random / answered).abs() < 1e-9, "{s}");
    let csv = std::fs::read_to_string(dir.join("report/zoom.csv")).unwrap();
    assert!(csv.starts_with("picture,accuracy") && csv.lines().count() == 4, "{csv}");
    assert!(std::fs::read_to_string(dir.join("report/report.html")).unwrap().contains("Zoom and ask again (3 examples"));
    let err = stderr_of(bin().current_dir(&dir).args(["batch", "--examples", "subset.jsonl", "--out", "x.jsonl", "--zoom", "0"]));
    assert!(err.contains("--zoom 0 is not a share"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
