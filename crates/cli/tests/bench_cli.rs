//! `llava-lens bench` end to end on whatever adapter the machine has (lavapipe in CI): every
//! stdout line is one JSON record with the fields docs/BENCHMARKS.md relies on.

use std::process::Command;

#[test]
fn bench_prints_one_json_record_per_measurement() {
    let out = Command::new(env!("CARGO_BIN_EXE_llava-lens"))
        .args(["bench", "--quick", "--kernel", "log_softmax", "--repeats", "1", "--warmup", "0"])
        .output()
        .expect("run llava-lens");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let kernels: Vec<&str> = lines.iter().map(|l| l["kernel"].as_str().unwrap()).collect();
    assert_eq!(kernels, ["copy", "log_softmax_gather"], "the copy ceiling always runs, then the filtered kernel");
    for l in &lines {
        assert!(!l["adapter"].as_str().unwrap().is_empty());
        assert!(l["backend"].is_string() && l["timer"].is_string() && l["shape"].is_object());
        assert!(l["median_ms"].as_f64().unwrap() > 0.0 && l["min_ms"].as_f64().unwrap() <= l["median_ms"].as_f64().unwrap());
    }
    let lsg = &lines[1];
    assert!(lsg["gbps"].as_f64().unwrap() > 0.0);
    assert!(lsg["fraction_of_copy_bandwidth"].as_f64().unwrap() > 0.0);
    assert!(lsg["cpu_ref_ms"].as_f64().unwrap() > 0.0, "--quick times the CPU reference too");
}

#[test]
fn bench_rejects_unknown_lanes_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_llava-lens"))
        .args(["bench", "--quick", "--kernel", "matvec", "--matvec-lanes", "48", "--repeats", "1", "--warmup", "0"])
        .output()
        .expect("run llava-lens");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("48 lanes per row; expected a power of two from 8 to 256"), "{stderr}");
}

#[test]
fn info_names_the_adapter_and_a_missing_adapter_says_how_to_get_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_llava-lens")).arg("info").output().expect("run llava-lens");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!info["adapter"].as_str().unwrap().is_empty());
    assert!(info["max_storage_binding_bytes"].as_u64().unwrap() <= 1 << 30);

    // Only a backend this platform does not have: no adapter can be found.
    let backend = if cfg!(target_os = "windows") { "metal" } else { "dx12" };
    let out = Command::new(env!("CARGO_BIN_EXE_llava-lens")).arg("info").env("WGPU_BACKEND", backend).output().expect("run llava-lens");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no GPU adapter found") && stderr.contains("mesa-vulkan-drivers"), "{stderr}");
}

#[test]
fn bench_preprocess_prints_one_record_per_processor_and_refuses_bad_sizes() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_llava-lens")).args(["bench", "preprocess"]).args(args).output().unwrap();
    let out = run(&["--size", "97x61", "--runs", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = lines.iter().map(|l| l["processor"].as_str().unwrap()).collect();
    assert_eq!(names, ["clip-336", "siglip-384"]);
    for l in &lines {
        assert_eq!((l["image"].as_str(), l["runs"].as_u64()), (Some("97x61"), Some(3)));
        assert!(l["min_ms"].as_f64().unwrap() <= l["median_ms"].as_f64().unwrap());
    }
    let err = String::from_utf8_lossy(&run(&["--size", "0x5"]).stderr).to_string();
    assert!(err.contains("--size 0x5: sides of 1 to 16384 pixels"), "{err}");
}
