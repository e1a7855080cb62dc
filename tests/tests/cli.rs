//! The `ctnet` CLI against a real stack: docker-shaped commands, tables,
//! --json, and errors that print the server's message and exit non-zero.
use std::process::{Command, Output};

use ctnet_tests::{bin, net, Stack};

fn ctnet(st: &Stack, args: &[&str]) -> Output {
    Command::new(bin("ctnet"))
        .env("CTNET_HOST", &st.api_socket)
        .args(args)
        .output()
        .expect("run ctnet")
}

fn ok(st: &Stack, args: &[&str]) -> String {
    let out = ctnet(st, args);
    assert!(out.status.success(), "ctnet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(st: &Stack, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(st, args)).expect("valid JSON")
}

#[tokio::test]
async fn cli_walkthrough() {
    let st = Stack::start().await;
    assert_eq!(ok(&st, &["status"]), "SERVING\n");
    let id = ok(
        &st,
        &["network", "create", "web", "--subnet", "198.19.20.0/24", "--label", "tier=front"],
    );
    assert_eq!(id.trim().len(), 16);
    let table = ok(&st, &["network", "ls"]);
    assert!(table.starts_with("NETWORK ID"), "{table}");
    assert!(table.contains("web") && table.contains("198.19.20.0/24"), "{table}");

    let a = ok(&st, &["sandbox", "create", "--name", "a", "--net", "web", "--ip", "198.19.20.50"]);
    let b = ok(&st, &["sandbox", "create", "--name", "b", "--mac", "02:00:00:00:00:0b"]);
    assert_eq!(json(&st, &["sandbox", "inspect", "b"])[0]["id"], b.trim());
    ok(&st, &["sandbox", "create", "--name", "n", "--net", "none"]);
    ok(&st, &["sandbox", "create", "--name", "h", "--net", "host"]);
    ok(&st, &["sandbox", "create", "--name", "j", "--net", "container:a"]);
    let inspect = json(&st, &["sandbox", "inspect", "a"]);
    assert_eq!(inspect[0]["id"], a.trim());
    assert_eq!(inspect[0]["interfaces"][0]["address"], "198.19.20.50/24");
    assert_eq!(
        json(&st, &["sandbox", "inspect", "b"])[0]["interfaces"][0]["mac_address"],
        "02:00:00:00:00:0b"
    );
    assert_eq!(
        json(&st, &["sandbox", "inspect", "j"])[0]["mode"],
        format!("container:{}", a.trim())
    );
    let listed = json(&st, &["sandbox", "ls", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 5);
    assert!(ok(&st, &["sandbox", "ls"]).contains("eth0=198.19.20.50/24"));

    let connected = json(&st, &["--json", "sandbox", "connect", "b", "web"]);
    assert_eq!(connected["interfaces"][1]["name"], "eth1");
    let pin_b =
        json(&st, &["sandbox", "inspect", "b"])[0]["netns_path"].as_str().unwrap().to_string();
    assert!(net::ping(
        std::path::Path::new(&pin_b),
        "198.19.20.50".parse::<std::net::Ipv4Addr>().unwrap(),
        3
    ));
    assert_eq!(
        json(&st, &["network", "inspect", "web"])[0]["sandboxes"].as_array().unwrap().len(),
        2
    );
    ok(&st, &["sandbox", "disconnect", "b", "web"]);

    // Published ports, docker style.
    ok(&st, &["sandbox", "create", "--name", "p", "-p", "8080:80", "-p", "127.0.0.1:5353:53/udp"]);
    assert_eq!(
        ok(&st, &["sandbox", "port", "p"]),
        "80/tcp -> 0.0.0.0:8080\n53/udp -> 127.0.0.1:5353\n"
    );
    let out = ctnet(&st, &["sandbox", "create", "-p", "8080:81"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"));
    ok(&st, &["sandbox", "rm", "p"]);

    // Errors: the server's message, non-zero exit.
    let out = ctnet(&st, &["sandbox", "create", "--net", "container:ghost"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ghost") && err.contains("NotFound"), "{err}");
    let out = ctnet(&st, &["network", "rm", "web"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FailedPrecondition"));

    assert_eq!(ok(&st, &["sandbox", "rm", "j", "a", "b", "n", "h"]).lines().count(), 5);
    ok(&st, &["network", "rm", "web"]);
    st.finish().await;
}

#[tokio::test]
async fn cli_reports_an_unreachable_server() {
    let out = Command::new(bin("ctnet"))
        .args(["-H", "/nonexistent/ctnet.sock", "network", "ls"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach ctnet"));
}

#[tokio::test]
async fn cli_exits_quietly_when_its_reader_goes_away() {
    // `ctnet --json network ls | head -1`: the reader is gone before the
    // output is written. The old CLI panicked ("failed printing to stdout").
    let st = Stack::start().await;
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let out = Command::new(bin("ctnet"))
        .env("CTNET_HOST", &st.api_socket)
        .args(["--json", "network", "ls"])
        .stdout(std::process::Stdio::from(write_end))
        .output()
        .expect("run ctnet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    st.finish().await;
}

/// `--ipv4=false`: an IPv6-only network from the CLI, its sandbox with an
/// IPv6 address alone, and the refusal without IPv6 printed with exit 1.
#[tokio::test]
async fn cli_ipv6_only_network() {
    let st = Stack::start().await;
    ok(&st, &["network", "create", "only6", "--ipv4=false", "--subnet", "2001:db8:23::/64"]);
    let n = json(&st, &["network", "inspect", "only6"]);
    assert_eq!(
        (n[0]["subnet"].as_str(), n[0]["ipv6_subnet"].as_str()),
        (Some(""), Some("2001:db8:23::/64"))
    );
    ok(&st, &["sandbox", "create", "--name", "w", "--net", "only6"]);
    let i = &json(&st, &["sandbox", "inspect", "w"])[0]["interfaces"][0];
    assert_eq!(
        (i["address"].as_str(), i["ipv6_address"].as_str()),
        (Some(""), Some("2001:db8:23::2/64"))
    );
    assert!(ok(&st, &["sandbox", "ls"]).contains("eth0=2001:db8:23::2/64"));
    let out = ctnet(&st, &["network", "create", "bad", "--ipv4=false"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enable_ipv4"), "{out:?}");
    ok(&st, &["sandbox", "rm", "w"]);
    ok(&st, &["network", "rm", "only6"]);
    st.finish().await;
}
