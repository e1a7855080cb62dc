//! The hardened systemd units: rendered with ExecStart pointing at the built
//! binaries (nothing installed), checked with systemd-analyze verify, and
//! held to their exposure thresholds (tenths: 5 = 0.5).
use std::path::{Path, PathBuf};
use std::process::Command;

use ctnet_tests::bin;

fn render() -> PathBuf {
    let out = std::env::temp_dir().join(format!("ctnet-units-{:x}", rand::random::<u64>()));
    let bindir = bin("ctnet-netexec").parent().unwrap().to_path_buf();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/render.sh");
    let st =
        Command::new("bash").arg(script).arg(&bindir).arg(&out).status().expect("render units");
    assert!(st.success());
    out
}

fn analyze(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("systemd-analyze (apt install systemd)")
}

#[test]
fn units_verify_and_meet_their_exposure_targets() {
    let dir = render();
    for unit in [
        "ctnet-api.service",
        "ctnet-netexec.service",
        "ctnet-netexec-join-only.service",
        "ctnet-api.socket",
        "ctnet-api-remote.socket",
        "ctnet-api-metrics.socket",
        "ctnet-netexec.socket",
    ] {
        let out = analyze(&dir, &["verify", "--man=no", &format!("./{unit}")]);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{unit}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Pin-creating netexec: no option that makes a private mount namespace
    // is possible (pins would vanish), so 3.8 is its floor as uid 0.
    for (unit, threshold) in [
        ("ctnet-api.service", "5"),
        ("ctnet-netexec.service", "38"),
        ("ctnet-netexec-join-only.service", "20"),
    ] {
        let out = analyze(
            &dir,
            &[
                "security",
                "--offline=true",
                &format!("--threshold={threshold}"),
                &format!("./{unit}"),
            ],
        );
        let last =
            String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
        assert!(out.status.success(), "{unit} over {threshold}: {last}");
    }
    // Control: a plain root unit does not pass, so the check can fail.
    std::fs::write(
        dir.join("plain.service"),
        format!("[Service]\nExecStart={}\n", bin("ctnet-netexec").display()),
    )
    .unwrap();
    let out = analyze(&dir, &["security", "--offline=true", "--threshold=38", "./plain.service"]);
    assert!(!out.status.success(), "a plain root unit must fail the threshold");
    std::fs::remove_dir_all(&dir).unwrap();
}
