//! One tenant floods, another works: tenant alpha (a client certificate)
//! with tight limits, tenant beta with the defaults, both over TLS into a
//! fake host. Shared by the flood isolation test and the benchmark.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pki::Pki;
use crate::remote::{self, ClientFiles};
use crate::tenants::Tenants;
use crate::{pb, req, Options, Stack};

pub const ALPHA: &str = "spiffe://ctnet.test/alpha";
pub const BETA: &str = "spiffe://ctnet.test/beta";

/// Alpha: 20 calls/s, 4 mutating in flight; quotas high enough that only
/// the limits refuse it.
const POLICY: &str = r#"
[tenants.alpha]
certificates = ["spiffe://ctnet.test/alpha"]
[tenants.alpha.quota]
sandboxes = 4096
owned_netns = 4096
[tenants.alpha.limits]
rate = 20
burst = 20
mutating = 4

[tenants.beta]
certificates = ["spiffe://ctnet.test/beta"]
[tenants.beta.limits]
rate = 1000
burst = 1000
"#;

/// Stops a flood when dropped, so a failing measurement never leaves the
/// flooders running.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub struct Flood {
    pub pki: Pki,
    pub tenants: Tenants,
    pub alpha: ClientFiles,
    pub beta: ClientFiles,
}

impl Flood {
    pub fn new() -> Flood {
        let pki = Pki::new();
        let (alpha, beta) = (pki.client("alpha", ALPHA), pki.client("beta", BETA));
        Flood { tenants: Tenants::new(POLICY), pki, alpha, beta }
    }

    pub fn options(&self) -> Options {
        let policy = self.tenants.policy.display().to_string();
        self.pki.options(&["--policy", &policy])
    }
}

impl Default for Flood {
    fn default() -> Self {
        Self::new()
    }
}

/// Outcomes of a flood, by gRPC code name.
pub type Outcomes = BTreeMap<String, usize>;

/// `workers` loops of tenant alpha, each creating a `none` sandbox and
/// deleting it again, retrying at once whatever the answer, until `stop`
/// is set. Returns the outcomes and one refusal's retry hint (ms).
pub async fn flood(
    host: &Path,
    files: &ClientFiles,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Outcomes, Option<u64>) {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mut c = remote::grpc_client(host, files).await.expect("alpha connects");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Outcomes::new();
            let mut hint = None;
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let r = req::mode(
                    &format!("f{w}-{i}"),
                    pb::create_sandbox_request::Mode::None(pb::NoneMode {}),
                );
                let code = match c.sandboxes.create_sandbox(r).await {
                    Ok(s) => {
                        let id = s.into_inner().id;
                        let _ = c
                            .sandboxes
                            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: id })
                            .await;
                        tonic::Code::Ok
                    }
                    Err(s) => {
                        let h = s.metadata().get("grpc-retry-pushback-ms");
                        hint = hint.or(h.and_then(|v| v.to_str().ok()?.parse().ok()));
                        s.code()
                    }
                };
                *seen.entry(format!("{code:?}")).or_default() += 1;
            }
            (seen, hint)
        }));
    }
    let mut all = Outcomes::new();
    let mut hint = None;
    for t in tasks {
        let (seen, h) = t.await.unwrap();
        hint = hint.or(h);
        for (k, v) in seen {
            *all.entry(k).or_default() += v;
        }
    }
    (all, hint)
}

/// Tenant beta's creates of `none` sandboxes, one after another, each
/// deleted again; every one must succeed. Returns the create latencies.
pub async fn serial_creates(c: &mut crate::Client, tag: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = req::mode(
            &format!("{tag}-{i}"),
            pb::create_sandbox_request::Mode::None(pb::NoneMode {}),
        );
        let t = Instant::now();
        let s = c.sandboxes.create_sandbox(r).await.expect("beta's create is served");
        out.push(t.elapsed());
        let id = s.into_inner().id;
        c.sandboxes
            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: id })
            .await
            .expect("beta's delete");
    }
    out
}

/// Deletes what alpha's flood left behind (as the admin).
pub async fn clean_up(st: &Stack) {
    let mut c = st.client.sandboxes.clone();
    let left = c.list_sandboxes(pb::ListSandboxesRequest::default()).await.unwrap().into_inner();
    for s in left.sandboxes {
        c.delete_sandbox(pb::DeleteSandboxRequest { sandbox: s.id }).await.expect("clean up");
    }
}
