//! Flood isolation: tenant alpha calls as fast as it can and is throttled
//! (ResourceExhausted over its rate, Unavailable over its in-flight bound,
//! each with a retry hint, each audited), while tenant beta's creates, made
//! at the same time, all succeed. No timing assertions: the latency ratio
//! belongs to the benchmark.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ctnet_tests::flood::{self, Flood};
use ctnet_tests::{remote, Stack};

#[tokio::test]
async fn a_flooding_tenant_is_throttled_while_another_is_served() {
    let f = Flood::new();
    let st = Stack::start_with(f.options()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood::flood(&st.host, &f.alpha, 8, stop.clone());
    let mut beta = remote::grpc_client(&st.host, &f.beta).await.unwrap();
    let served = async {
        let _stop = flood::StopOnDrop(stop.clone());
        // Beta starts once the flood is under way, and keeps going through it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = flood::serial_creates(&mut beta, "b", 10).await;
        // And the flood goes on a little after.
        tokio::time::sleep(Duration::from_millis(500)).await;
        t
    };
    let ((outcomes, hint), beta_times) = tokio::join!(flooding, served);
    assert_eq!(beta_times.len(), 10, "every one of beta's creates succeeded");
    let count = |code: &str| outcomes.get(code).copied().unwrap_or(0);
    assert!(count("Ok") > 0, "alpha is served within its limits: {outcomes:?}");
    assert!(
        count("ResourceExhausted") + count("Unavailable") > 0,
        "alpha is throttled: {outcomes:?}"
    );
    assert_eq!(
        count("Ok") + count("ResourceExhausted") + count("Unavailable"),
        outcomes.values().sum::<usize>(),
        "no other outcome: {outcomes:?}"
    );
    assert!(hint.is_some_and(|ms| ms > 0), "a refusal carries grpc-retry-pushback-ms");
    // Throttled calls have their audit lines (the layer sits inside the
    // request layer, which writes them), alpha's identity included.
    let audit = std::fs::read_to_string(st.state_dir.join("audit.log")).unwrap();
    let throttled =
        audit.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|l| {
            l["identity"] == flood::ALPHA
                && l["tenant"] == "alpha"
                && (l["outcome"] == "ResourceExhausted" || l["outcome"] == "Unavailable")
        });
    assert!(throttled, "a throttled call's audit line");
    flood::clean_up(&st).await;
    st.finish().await;
}
