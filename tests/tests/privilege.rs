//! The privilege model, read back from the kernel and attacked directly.
use std::path::Path;
use std::process::Command;

use ctnet_proto::exec::{self as xpb, executor_client::ExecutorClient};
use ctnet_tests::{bin, net, netns, Options, Stack};
use tonic::Code;

fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn threads_status(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    tasks.flatten().map(|t| std::fs::read_to_string(t.path().join("status")).unwrap()).collect()
}

#[tokio::test]
async fn netexec_holds_two_capabilities_and_a_filter_on_every_thread_api_holds_none() {
    let st = Stack::start().await;
    let threads = threads_status(st.netexec_pid());
    assert!(threads.len() > 1, "a multi-threaded netexec");
    for s in &threads {
        assert_eq!(status_field(s, "CapEff:"), "0000000000201000", "CapEff");
        assert_eq!(status_field(s, "CapPrm:"), "0000000000201000", "CapPrm");
        assert_eq!(status_field(s, "CapBnd:"), "0000000000201000", "CapBnd");
        assert_eq!(status_field(s, "CapInh:"), "0000000000000000", "CapInh");
        assert_eq!(status_field(s, "CapAmb:"), "0000000000000000", "CapAmb");
        assert_eq!(status_field(s, "NoNewPrivs:"), "1");
        assert_eq!(status_field(s, "Seccomp:"), "2");
    }
    for s in threads_status(st.api_pid()) {
        let uids: Vec<u32> =
            status_field(&s, "Uid:").split_whitespace().map(|u| u.parse().unwrap()).collect();
        assert_eq!(uids, vec![st.api_uid; 4], "real, effective, saved and fs uid");
        assert_eq!(status_field(&s, "CapEff:"), "0000000000000000");
        assert_eq!(status_field(&s, "CapPrm:"), "0000000000000000");
        // An empty bounding set: not even a setuid binary could give it a
        // capability back (it used to keep the full set).
        assert_eq!(status_field(&s, "CapBnd:"), "0000000000000000", "CapBnd");
        assert_eq!(status_field(&s, "NoNewPrivs:"), "1");
        // Its own filter on every thread (it used to have none).
        assert_eq!(status_field(&s, "Seccomp:"), "2", "ctnet-api's filter");
    }
    st.finish().await;
}

async fn executor(st: &Stack) -> ExecutorClient<tonic::transport::Channel> {
    let ch =
        tonic::transport::Endpoint::from_shared(format!("unix://{}", st.exec_socket.display()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    ExecutorClient::new(ch)
}

#[tokio::test]
async fn a_uid_past_the_file_mode_but_not_allowed_is_refused() {
    let st = Stack::start().await;
    // This test runs as root: past the socket's mode, but not --allow-uid.
    let err = executor(&st).await.ping(xpb::PingRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("uid 0"), "{}", err.message());
    let log = st.netexec_log();
    let refused =
        log.lines().find(|l| l.contains("executor call refused")).expect("a warning was logged");
    assert!(
        refused.contains("uid=0") && refused.contains(&format!("pid=Some({})", std::process::id())),
        "{refused}"
    );
    // The socket itself: 0660, group of the api-server.
    let meta = std::fs::metadata(&st.exec_socket).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, st.api_gid));
    // The api-server's uid is accepted: everything else in the suite uses it.
    st.finish().await;
}

fn probe(profile: &str, filter: bool, scratch: &Path) -> serde_json::Value {
    // A throwaway mount namespace: the control run really remounts.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private"]).arg(bin("ctnet-netexec"));
    cmd.args(["probe-seccomp", "--profile", profile, "--scratch"]).arg(scratch);
    if !filter {
        cmd.arg("--no-filter");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "probe: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

const DANGEROUS: [&str; 10] = [
    "unshare_newuser",
    "unshare_newns",
    "setns_any_type",
    "mount_remount",
    "mount_shared_rec",
    "socket_inet",
    "socket_packet",
    "netlink_kobject_uevent",
    "ptrace",
    "bpf",
];
const NEEDED: [&str; 8] = [
    "unshare_newnet",
    "setns_net",
    "bind_mount_and_detach",
    "socket_unix",
    "netlink_route",
    "netlink_netfilter",
    "thread",
    "exec",
];

/// ctnet-api's probes: under its filter or without it (the control).
fn api_probe(filter: &str) -> serde_json::Value {
    let out = std::process::Command::new(ctnet_tests::bin("ctnet-api"))
        .args(["--probe-seccomp", filter])
        .output()
        .expect("run ctnet-api --probe-seccomp");
    assert!(out.status.success(), "probe: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

#[test]
fn ctnet_apis_filter_refuses_what_it_does_not_need() {
    let (control, filtered) = (api_probe("off"), api_probe("on"));
    let refused = ["socket_inet", "socket_netlink", "unshare_newuser", "ptrace", "bpf", "exec"];
    for p in refused {
        assert_eq!(control[p], "ok", "control: {p} works without the filter");
        assert_eq!(filtered[p], "EPERM", "ctnet-api's filter must refuse {p}");
    }
    for p in ["socket_unix", "thread"] {
        assert_eq!((&control[p], &filtered[p]), (&"ok".into(), &"ok".into()), "{p}");
    }
}

#[test]
fn seccomp_refuses_what_netexec_does_not_need() {
    let scratch = std::env::temp_dir().join(format!("ctnet-probe-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&scratch).unwrap();
    let control = probe("creates", false, &scratch);
    let creates = probe("creates", true, &scratch);
    let join_only = probe("join-only", true, &scratch);
    std::fs::remove_dir_all(&scratch).unwrap();
    for p in DANGEROUS {
        assert_eq!(control[p], "ok", "control: {p} works without the filter");
        assert_eq!(creates[p], "EPERM", "creates profile must refuse {p}");
        assert_eq!(join_only[p], "EPERM", "join-only profile must refuse {p}");
    }
    for p in NEEDED {
        assert_eq!(control[p], "ok", "control {p}");
        assert_eq!(creates[p], "ok", "creates profile must allow {p}");
    }
    for p in ["unshare_newnet", "bind_mount_and_detach"] {
        assert_eq!(join_only[p], "EPERM", "join-only refuses {p}");
    }
    for p in ["setns_net", "socket_unix", "netlink_route", "thread", "exec"] {
        assert_eq!(join_only[p], "ok", "join-only allows {p}");
    }
}

#[tokio::test]
async fn a_bind_mount_in_netexecs_namespace_never_reaches_the_host_but_pins_do() {
    let mut st = Stack::start().await;
    let src = st.dir.join("mount-src");
    let dst = st.dir.join("mount-dst");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    // A process in netexec's mount namespace (as a compromised netexec would be).
    let ns = format!("--mount=/proc/{}/ns/mnt", st.netexec_pid());
    let out = Command::new("nsenter")
        .arg(&ns)
        .arg("mount")
        .arg("--bind")
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(out.status.success(), "mount inside: {}", String::from_utf8_lossy(&out.stderr));
    let inside = std::fs::read_to_string(format!("/proc/{}/mountinfo", st.netexec_pid())).unwrap();
    assert!(inside.contains(dst.to_str().unwrap()), "the mount exists in netexec's namespace");
    assert!(netns::mounts_under(&dst).is_empty(), "but not in the host's");
    // Everything else is read-only there; the pin directory is not.
    let line = inside.lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap();
    assert!(line.split(' ').nth(5).unwrap().starts_with("ro"), "{line}");
    // Kernel tunables, sysrq and devices are out of reach; network sysctls are not.
    let pid = st.netexec_pid();
    let inside_sh = |cmd: &str| {
        Command::new("nsenter").arg(&ns).arg("sh").arg("-c").arg(cmd).status().unwrap().success()
    };
    // Writes the current value back: harmless even if the guard were missing.
    let rewrite = "v=$(cat /proc/sys/kernel/core_pattern) && printf '%s\\n' \"$v\" > /proc/sys/kernel/core_pattern";
    assert!(!inside_sh(rewrite), "core_pattern must be read-only");
    assert!(
        Command::new("sh").arg("-c").arg(rewrite).status().unwrap().success(),
        "control: the same write works outside"
    );
    if Path::new("/proc/sysrq-trigger").exists() {
        assert!(!inside_sh("echo s > /proc/sysrq-trigger"), "sysrq must be read-only");
    }
    assert!(inside_sh("cat /proc/sys/net/ipv4/ip_forward > /dev/null"), "network sysctls readable");
    let devs: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root/dev"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut devs = devs;
    devs.sort();
    assert_eq!(devs, vec!["null", "random", "urandom", "zero"], "a minimal /dev");
    // Pins made there do reach the host.
    let s = st.create(ctnet_tests::req::bridge("pinned", &[])).await;
    assert!(netns::is_pin(&Stack::pin_of(&s)), "the pin is visible in the host's mount table");
    st.delete("pinned").await;
    let _ = Command::new("nsenter").arg(&ns).arg("umount").arg(&dst).status();
    st.finish().await;
}

#[tokio::test]
async fn forged_executor_requests_are_refused_and_change_nothing() {
    // Root is allowed here, so the test can speak to the executor directly.
    let opts =
        Options { netexec_args: vec!["--allow-uid".into(), "0".into()], ..Default::default() };
    let st = Stack::start_with(opts).await;
    let mut x = executor(&st).await;
    let sym = st.runtime_dir.join("to-host");
    std::os::unix::fs::symlink(&st.host, &sym).unwrap();
    let regular = st.runtime_dir.join("regular");
    std::fs::write(&regular, "").unwrap();
    let before = (net::ip_json(&st.host, &["addr", "show"]), st.sandbox_pins());

    let ext =
        |p: &str| Some(xpb::NetnsRef { kind: Some(xpb::netns_ref::Kind::ExternalPath(p.into())) });
    let owned =
        |id: &str| Some(xpb::NetnsRef { kind: Some(xpb::netns_ref::Kind::SandboxId(id.into())) });
    let attach = |netns, host_ifname: &str| xpb::AttachEndpointRequest {
        netns,
        host_ifname: host_ifname.into(),
        ifname: "eth0".into(),
        bridge: "ctnet0".into(),
        address: "198.18.0.50/16".into(),
        gateway: "198.18.0.1".into(),
        mac: vec![2, 0x42, 198, 18, 0, 50],
        mtu: 1500,
        owner: "sb:0000000000000001".into(),
        hairpin: true,
        announce: false,
        ..Default::default()
    };
    let rt = st.runtime_dir.display().to_string();
    let forged = vec![
        ("dotdot path", attach(ext(&format!("{rt}/../host.ns")), "ctvforged0")),
        ("symlink to host", attach(ext(sym.to_str().unwrap()), "ctvforged1")),
        ("regular file", attach(ext(regular.to_str().unwrap()), "ctvforged2")),
        ("host netns", attach(ext(st.host.to_str().unwrap()), "ctvforged3")),
        ("outside allowed dirs", attach(ext("/proc/1/ns/net"), "ctvforged4")),
        ("sandbox id traversal", attach(owned("../../etc/passwd"), "ctvforged5")),
        ("sandbox id 'host'", attach(owned("host"), "ctvforged6")),
        ("host end without prefix", attach(owned("0000000000000001"), "veth9")),
        ("host end eth0", attach(owned("0000000000000001"), "eth0")),
        ("host end lo", attach(owned("0000000000000001"), "lo")),
    ];
    for (case, r) in forged {
        let err = x.attach_endpoint(r).await.expect_err(case);
        assert!(
            matches!(err.code(), Code::InvalidArgument | Code::PermissionDenied),
            "{case}: {err:?}"
        );
    }
    for name in ["eth0", "lo", "ext0", "veth0"] {
        for unplug_only in [false, true] {
            let err = x
                .detach_endpoint(xpb::DetachEndpointRequest {
                    host_ifname: name.into(),
                    grace_ms: 0,
                    owner: "sb:00000000000000e1".into(),
                    unplug_only,
                })
                .await
                .expect_err(name);
            assert_eq!(err.code(), Code::PermissionDenied, "detach {name} ({unplug_only})");
        }
        let err = x
            .delete_bridge(xpb::DeleteBridgeRequest {
                name: name.into(),
                owner: "net:00000000000000b1".into(),
            })
            .await
            .expect_err(name);
        assert_eq!(err.code(), Code::PermissionDenied, "delete bridge {name}");
    }
    for id in ["host", "../x", "/etc/passwd", ""] {
        let err =
            x.delete_netns(xpb::DeleteNetnsRequest { sandbox_id: id.into() }).await.expect_err(id);
        assert_eq!(err.code(), Code::InvalidArgument, "delete netns {id:?}");
        let err =
            x.create_netns(xpb::CreateNetnsRequest { sandbox_id: id.into() }).await.expect_err(id);
        assert_eq!(err.code(), Code::InvalidArgument, "create netns {id:?}");
    }
    let bad_fw = xpb::FirewallDelta {
        add_networks: vec![xpb::FirewallNetwork {
            bridge: "eth0".into(),
            subnet: "10.0.0.0/8".into(),
            internal: false,
            icc: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(x.update_firewall(bad_fw).await.unwrap_err().code(), Code::PermissionDenied);
    let injection = xpb::FirewallDelta {
        add_ports: vec![xpb::FirewallPort {
            protocol: "tcp".into(),
            host_ip: String::new(),
            host_port: 1,
            target_ip: "198.18.0.9".into(),
            target_port: 1,
            owner: "x\" } ; flush ruleset ; #".into(),
            routed: false,
        }],
        ..Default::default()
    };
    assert_eq!(x.update_firewall(injection).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(
        (net::ip_json(&st.host, &["addr", "show"]), st.sandbox_pins()),
        before,
        "nothing changed"
    );
    assert!(!st.nft_elements("bridges").is_empty(), "the table is intact");
    std::fs::remove_file(&sym).unwrap();
    std::fs::remove_file(&regular).unwrap();
    st.finish().await;
}
