//! Spec versions: which ctnet-cni speaks, and what each changes in the
//! output. The result is always written in the configuration's version.
use serde_json::{json, Value};

pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u32, u32, u32);

/// The newest spoken, used where the input names none.
pub const LATEST: Version = Version(1, 1, 0);

impl Version {
    /// A version ctnet-cni speaks, or None.
    pub fn parse(s: &str) -> Option<Self> {
        if !SUPPORTED.contains(&s) {
            return None;
        }
        let mut n = s.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version(n.next()??, n.next()??, n.next()??))
    }

    /// Before 1.0.0 each ip carried its family as "version".
    pub fn ips_carry_family(self) -> bool {
        self < Version(1, 0, 0)
    }

    /// CHECK came with 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Version(0, 4, 0)
    }

    /// STATUS and GC came with 1.1.0.
    pub fn has_status_and_gc(self) -> bool {
        self >= Version(1, 1, 0)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// VERSION's answer. Any version in the request is answered (the runtime
/// negotiates from the list), even one ctnet-cni does not speak.
pub fn answer(requested: &str) -> Value {
    let v = if requested.is_empty() { LATEST.to_string() } else { requested.to_string() };
    json!({ "cniVersion": v, "supportedVersions": SUPPORTED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spoken_versions_parse_and_order() {
        assert!(Version::parse("0.2.0").is_none());
        assert!(Version::parse("1.2.0").is_none());
        assert!(Version::parse("garbage").is_none());
        let v = |s| Version::parse(s).unwrap();
        assert!(v("0.4.0").ips_carry_family() && !v("1.0.0").ips_carry_family());
        assert!(!v("0.3.1").has_check() && v("0.4.0").has_check());
        assert!(!v("1.0.0").has_status_and_gc() && v("1.1.0").has_status_and_gc());
        assert_eq!(v("0.3.1").to_string(), "0.3.1");
    }
}
