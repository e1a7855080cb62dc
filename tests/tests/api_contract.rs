//! The API contract: `buf lint` with the style proto/buf.yaml states, and
//! `buf breaking` (WIRE_JSON) against the committed baseline image
//! proto/baseline.binpb. The breaking check is shown to catch a changed
//! field type and a reused field number, and to accept a new field.
use std::path::{Path, PathBuf};
use std::process::Command;

use ctnet_tests::repo;

/// buf 1.75 from npm, which scripts/deps.sh installs under target/tools.
fn buf() -> PathBuf {
    let b = repo().join("target/tools/node_modules/.bin/buf");
    assert!(b.exists(), "{} missing: scripts/deps.sh installs @bufbuild/buf", b.display());
    b
}

/// Runs buf in `dir`; its success and its output.
fn run(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(buf()).current_dir(dir).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn against() -> String {
    repo().join("proto/baseline.binpb").display().to_string()
}

#[test]
fn the_protos_pass_buf_lint() {
    let (ok, out) = run(&repo(), &["lint", "proto"]);
    assert!(ok, "buf lint: {out}");
}

#[test]
fn the_api_has_not_broken_since_the_baseline() {
    let (ok, out) = run(&repo(), &["breaking", "proto", "--against", &against()]);
    assert!(ok, "buf breaking against proto/baseline.binpb: {out}");
}

/// A copy of proto/ (its buf.yaml and .proto files) in a temp dir, with
/// `change` made to ctnet.proto; the edit must apply.
fn changed(old: &str, new: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctnet-buf-{:016x}", rand::random::<u64>()));
    for sub in ["proto/ctnet/v1", "proto/ctnet/exec/v1"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let src = repo().join("proto");
    for f in ["buf.yaml", "proto/ctnet/exec/v1/exec.proto"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let api = std::fs::read_to_string(src.join("proto/ctnet/v1/ctnet.proto")).unwrap();
    assert_eq!(api.matches(old).count(), 1, "the edit {old:?} applies once");
    std::fs::write(dir.join("proto/ctnet/v1/ctnet.proto"), api.replacen(old, new, 1)).unwrap();
    dir
}

/// buf breaking on a changed copy: its success and the rules it reports.
fn breaking(old: &str, new: &str) -> (bool, String) {
    let dir = changed(old, new);
    let out = run(&dir, &["breaking", "proto", "--against", &against(), "--error-format", "json"]);
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn buf_breaking_catches_a_changed_type_and_a_reused_number_and_accepts_a_new_field() {
    // Control: the unchanged copy passes, so a failure below is the edit's.
    let (ok, out) = breaking("  uint32 mtu = 6;", "  uint32 mtu = 6;");
    assert!(ok, "an unchanged copy: {out}");
    let (ok, out) = breaking("  uint32 mtu = 6;", "  string mtu = 6;");
    assert!(!ok && out.contains("FIELD_WIRE_JSON_COMPATIBLE_TYPE"), "a changed type: {out}");
    // Field 7 removed and its number given to a new field.
    let (ok, out) = breaking("  bool internal = 7;", "  string zone = 7;");
    assert!(!ok && out.contains("FIELD_SAME_JSON_NAME"), "a reused number: {out}");
    let (ok, out) = breaking(
        "  optional bool enable_ipv4 = 15;",
        "  optional bool enable_ipv4 = 15;\n  string zone = 16;",
    );
    assert!(ok, "a new field is compatible: {out}");
}
