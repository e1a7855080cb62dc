//! A Python gRPC client from PyPI, with no .proto files, uses reflection and
//! health; health follows netexec.
use std::path::PathBuf;
use std::process::Command;

use ctnet_tests::{test_python, Stack};
use tonic_health::pb::health_check_response::ServingStatus;

fn run_client(st: &Stack, extra: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/reflect_client.py");
    let out = Command::new(test_python())
        .arg(script)
        .arg(&st.api_socket)
        .args(extra)
        .output()
        .expect("run python");
    assert!(out.status.success(), "python client failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("client prints JSON")
}

#[tokio::test]
async fn python_client_uses_reflection_and_health() {
    let mut st = Stack::start().await;
    let dual = ["--dual", "py6", "198.19.58.0/24", "2001:db8:58::/64"];
    let out = run_client(&st, &dual);
    let services: Vec<&str> =
        out["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for s in ["ctnet.v1.NetworkService", "ctnet.v1.SandboxService", "grpc.health.v1.Health"] {
        assert!(services.contains(&s), "{s} not reflected: {services:?}");
    }
    assert!(
        !services.iter().any(|s| s.starts_with("ctnet.exec")),
        "the executor API is not served publicly"
    );
    let names: Vec<&str> =
        out["networks"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bridge", "py6"]);
    assert_eq!(
        out["networks"][1],
        serde_json::json!({"name": "py6", "subnet": "198.19.58.0/24", "ipv6_subnet": "2001:db8:58::/64"}),
        "a dual-stack network made and read back through reflection"
    );
    assert_eq!(out["networks"][0]["ipv6_subnet"], "", "the default network is IPv4-only");
    let py6 = st.network("py6").await;
    assert_eq!(py6.ipv6_gateway, "2001:db8:58::1");
    let del = ctnet_tests::pb::DeleteNetworkRequest { network: "py6".into() };
    st.client.networks.delete_network(del).await.unwrap();
    assert_eq!(out["health"], "SERVING");

    st.kill_netexec();
    st.wait_health(ServingStatus::NotServing).await;
    assert_eq!(run_client(&st, &["--health-only"])["health"], "NOT_SERVING");

    st.start_netexec();
    st.wait_health(ServingStatus::Serving).await;
    assert_eq!(run_client(&st, &["--health-only"])["health"], "SERVING");
    st.finish().await;
}
