//! Remote callers over TLS with client certificates, and caller identities
//! on both transports. Certificates are made by the test (rcgen). Before
//! this, ctnet-api served only its Unix socket and had no caller identity.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ctnet_tests::net::{self, Echo};
use ctnet_tests::pki::{self, Ca, Pki, Subject, CLIENT_ID};
use ctnet_tests::remote::{self, ClientFiles, Presents, LISTEN};
use ctnet_tests::{bin, pb, test_python, Stack, HOST_OUTSIDE};
use serde_json::Value;

/// The ctnet CLI inside the fake host, over TLS; its stdout as JSON.
fn cli(st: &Stack, files: &ClientFiles, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", st.host.display()))
        .arg(bin("ctnet"))
        .args(["--json", "-H", &format!("tls://{LISTEN}")])
        .arg("--cacert")
        .arg(&files.ca)
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// One call from Python's grpcio over TLS (ssl_channel_credentials), in the fake host.
fn py(st: &Stack, files: &ClientFiles, service: &str, method: &str, request: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/tls_call.py");
    let out = Command::new("nsenter")
        .arg(format!("--net={}", st.host.display()))
        .arg(test_python())
        .arg(script)
        .arg(LISTEN)
        .args([&files.ca, &files.cert, &files.key])
        .args([service, method, &request.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {method}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The published port answers from the external namespace.
async fn reached(st: &mut Stack, ext: &Path, name: &str, port: u16) {
    let s = st.get(name).await;
    let echo = Echo::start_on(&Stack::pin_of(&s), std::net::Ipv4Addr::UNSPECIFIED, 80, 1);
    let reply = net::tcp_roundtrip(ext, HOST_OUTSIDE, port, name);
    assert_eq!(reply.as_deref(), Ok(name), "{name}'s published port from outside");
    echo.peers();
}

#[tokio::test]
async fn the_cli_and_python_work_over_tls_and_see_the_certificates_identity() {
    let p = Pki::new();
    let mut st = Stack::start_with(p.options(&[])).await;
    let ext = st.add_external();

    let me = cli(&st, &p.client, &["whoami"]).unwrap();
    assert_eq!((me["kind"].as_str(), me["name"].as_str()), (Some("certificate"), Some(CLIENT_ID)));
    cli(&st, &p.client, &["network", "create", "remote", "--subnet", "198.19.70.0/24"]).unwrap();
    let args = ["sandbox", "create", "--name", "web", "--net", "remote", "-p", "18080:80"];
    cli(&st, &p.client, &args).unwrap();
    reached(&mut st, &ext.pin, "web", 18080).await;
    cli(&st, &p.client, &["sandbox", "rm", "web"]).unwrap();
    cli(&st, &p.client, &["network", "rm", "remote"]).unwrap();

    let net = "ctnet.v1.NetworkService";
    let sb = "ctnet.v1.SandboxService";
    let me = py(&st, &p.client, "ctnet.v1.MaintenanceService", "WhoAmI", serde_json::json!({}));
    assert_eq!(me["name"], CLIENT_ID, "{me}");
    py(
        &st,
        &p.client,
        net,
        "CreateNetwork",
        serde_json::json!({"name": "py", "subnet": "198.19.71.0/24"}),
    );
    let create = serde_json::json!({
        "name": "pyweb", "bridge": {"networks": [{"network": "py"}]}, "publish": ["18081:80"],
    });
    py(&st, &p.client, sb, "CreateSandbox", create);
    reached(&mut st, &ext.pin, "pyweb", 18081).await;
    py(&st, &p.client, sb, "DeleteSandbox", serde_json::json!({"sandbox": "pyweb"}));
    py(&st, &p.client, net, "DeleteNetwork", serde_json::json!({"network": "py"}));
    st.finish().await;
}

#[tokio::test]
async fn bad_client_certificates_are_refused_at_the_handshake() {
    let p = Pki::new();
    let st = Stack::start_with(p.options(&[])).await;
    let good = p.ca.client("good", None);
    let other = Ca::new("another CA").client("stranger", Some(CLIENT_ID));
    let expired =
        p.ca.issue(&Subject { cn: "old", uri: None, names: &[], server: false, expired: true });
    let mismatched = Presents::Cert { cert: good.cert.clone(), key: p.ca.client("x", None).key };
    let control =
        remote::handshake(&st.host, &p.ca.pem, Presents::Cert { cert: good.cert, key: good.key })
            .await;
    assert!(control.is_ok(), "control: a good client certificate is accepted: {control:?}");
    let cases = [
        ("no client certificate", Presents::Nothing),
        ("another CA's certificate", Presents::Cert { cert: other.cert, key: other.key }),
        ("an expired certificate", Presents::Cert { cert: expired.cert, key: expired.key }),
        ("a key that does not match", mismatched),
    ];
    for (what, presents) in cases {
        let r = remote::handshake(&st.host, &p.ca.pem, presents).await;
        assert!(r.is_err(), "{what} was accepted");
    }
    // And through the gRPC client: the control works, a stranger does not.
    let mut c = remote::grpc_client(&st.host, &p.client).await.unwrap();
    c.maintenance.who_am_i(pb::WhoAmIRequest {}).await.expect("control call");
    let stranger = pki::write(&p.dir, "stranger.pem", &Ca::new("x").client("s", None).cert);
    let files = ClientFiles { cert: stranger, ..p.client.clone() };
    let refused = match remote::grpc_client(&st.host, &files).await {
        Err(e) => e,
        Ok(mut c) => c.maintenance.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err().to_string(),
    };
    assert!(!refused.is_empty());
    st.finish().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_established_connections() {
    let p = Pki::new();
    let st = Stack::start_with(p.options(&[])).await;
    let first = std::fs::read_to_string(&p.server_cert).unwrap();
    let seen = remote::handshake(&st.host, &p.ca.pem, client_presents(&p)).await.unwrap();
    assert_eq!(seen, remote::der_of(&first));
    let mut established = remote::grpc_client(&st.host, &p.client).await.unwrap();
    established.maintenance.who_am_i(pb::WhoAmIRequest {}).await.unwrap();

    let second = p.ca.server("ctnet-server-2");
    std::fs::write(&p.server_cert, &second.cert).unwrap();
    std::fs::write(&p.server_key, &second.key).unwrap();
    hup(&st);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = remote::handshake(&st.host, &p.ca.pem, client_presents(&p)).await.unwrap();
        if seen == remote::der_of(&second.cert) {
            break;
        }
        assert!(Instant::now() < deadline, "new connections never got the new certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    established
        .maintenance
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .expect("the established connection keeps working");

    // A broken file: the reload fails, says why, and the second one stays.
    std::fs::write(&p.server_cert, "not a certificate").unwrap();
    hup(&st);
    let log = st.dir.join("api-1.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("TLS reload failed") {
        assert!(Instant::now() < deadline, "no reload failure logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("--tls-cert"), "the log names the file: {text}");
    let seen = remote::handshake(&st.host, &p.ca.pem, client_presents(&p)).await.unwrap();
    assert_eq!(seen, remote::der_of(&second.cert), "the old certificate stays");
    st.finish().await;
}

fn client_presents(p: &Pki) -> Presents {
    Presents::Cert {
        cert: std::fs::read_to_string(&p.client.cert).unwrap(),
        key: std::fs::read_to_string(&p.client.key).unwrap(),
    }
}

fn hup(st: &Stack) {
    let pid = nix::unistd::Pid::from_raw(st.api_pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
}

/// Full TLS handshakes from 127.0.0.2, back to back for `secs`, while
/// 127.0.0.1 makes calls; returns how many handshakes were accepted and
/// how many calls 127.0.0.1 got answered.
async fn flood(st: &Stack, p: &Pki, secs: u64) -> (usize, usize) {
    let mut c = remote::grpc_client(&st.host, &p.client).await.unwrap();
    let (host, ca, presents) = (st.host.clone(), p.ca.pem.clone(), client_presents(p));
    let Presents::Cert { cert, key } = presents else { unreachable!() };
    let flooder = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut accepted = 0;
        while Instant::now() < until {
            let me = Presents::Cert { cert: cert.clone(), key: key.clone() };
            let src = Some("127.0.0.2:0".parse().unwrap());
            if remote::handshake_from(&host, src, &ca, me).await.is_ok() {
                accepted += 1;
            }
        }
        accepted
    });
    let mut answered = 0;
    while !flooder.is_finished() {
        c.maintenance.who_am_i(pb::WhoAmIRequest {}).await.expect("the other address is answered");
        answered += 1;
    }
    let mut fresh =
        remote::grpc_client(&st.host, &p.client).await.expect("a new connection is accepted");
    fresh.networks.list_networks(pb::ListNetworksRequest::default()).await.expect("and answered");
    (flooder.await.unwrap(), answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_from_one_address_leaves_another_answered() {
    let p = Pki::new();
    // 5 new connections a second per address, 10 as burst.
    let st = Stack::start_with(p.options(&["--tls-handshakes-per-address", "5"])).await;
    let (accepted, answered) = flood(&st, &p, 3).await;
    eprintln!("limited: {accepted} flood handshakes accepted, {answered} calls answered");
    assert!(answered > 0);
    assert!(accepted <= 10 + 5 * 4, "the rate limit let {accepted} handshakes through");
    st.finish().await;
    // Control: without a useful limit the same flood gets far more through,
    // so the check above can fail.
    let st = Stack::start_with(p.options(&["--tls-handshakes-per-address", "100000"])).await;
    let (unlimited, _) = flood(&st, &p, 3).await;
    eprintln!("control: {unlimited} flood handshakes accepted");
    assert!(unlimited > 2 * (10 + 5 * 4), "control: only {unlimited} handshakes without the limit");
    st.finish().await;
}

#[tokio::test]
async fn unix_callers_are_their_uid_and_groups() {
    let st = Stack::start().await;
    // The test's uids stand in for the socket's group.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&st.api_socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let whoami = |uid: u32, groups: &str| {
        let out = Command::new("setpriv")
            .args(["--reuid", &uid.to_string(), "--regid", &uid.to_string(), "--groups", groups])
            .arg(bin("ctnet"))
            .args(["--json", "-H"])
            .arg(&st.api_socket)
            .arg("whoami")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (a, b) = (st.api_uid + 11, st.api_uid + 12);
    let (wa, wb) = (whoami(a, "64001"), whoami(b, "64002,64003"));
    assert_eq!(wa["kind"], "unix");
    assert_eq!((wa["uid"].as_u64(), wb["uid"].as_u64()), (Some(a.into()), Some(b.into())));
    assert_eq!(wa["name"], format!("uid:{a}"));
    assert_eq!(wa["groups"], serde_json::json!([64001]));
    assert_eq!(wb["groups"], serde_json::json!([64002, 64003]));
    st.finish().await;
}
