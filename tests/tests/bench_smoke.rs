//! The benchmark with tiny counts, so it cannot rot. No timing assertions:
//! speed is judged by the full run's ratios, not by the test suite.
use std::process::Command;

use ctnet_tests::bin;

#[test]
fn benchmark_smoke_run_produces_its_reports() {
    let out = std::env::temp_dir().join(format!("ctnet-bench-smoke-{:x}", rand::random::<u64>()));
    let run = Command::new(bin("ctnet-bench"))
        .arg("--smoke")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run ctnet-bench");
    assert!(
        run.status.success(),
        "ctnet-bench --smoke failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    for key in [
        "floor_ms",
        "end_to_end_ms",
        "scaling",
        "ports",
        "concurrency",
        "memory_mb",
        "healing_ms",
        "breakdown_ms",
        "tenant_flood_ms",
    ] {
        assert!(json.get(key).is_some(), "results.json lacks {key}");
    }
    assert!(json["floor_ms"]["p50"].as_f64().unwrap() > 0.0);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| measure | value | target | met |"));
    let svg = std::fs::read_to_string(out.join("create-latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    std::fs::remove_dir_all(&out).unwrap();
}
