//! Identifiers: resource ids, references by id or name, bridge names. Each
//! is checked once when made, so nothing behind the edge slices a string it
//! has not checked.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How many hex digits of an id name its kernel objects (host veth ends,
/// default bridge names); unique among live resources of a kind.
pub const SHORT_LEN: usize = 10;
const ID_LEN: usize = 16;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ": 16 lower-case hex digits.")]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(format!("{:016x}", rand::random::<u64>()))
            }

            pub fn parse(s: &str) -> Option<Self> {
                let ok = s.len() == ID_LEN
                    && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                ok.then(|| Self(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The first SHORT_LEN digits (an id is ASCII of fixed length).
            pub fn short(&self) -> &str {
                self.0.get(..SHORT_LEN).unwrap_or(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> std::result::Result<Self, String> {
                Self::parse(&s).ok_or_else(|| format!("{s:?} is not a {} id", $what))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id_type!(SandboxId, "sandbox");
id_type!(NetworkId, "network");
id_type!(StoreId, "store");

/// A reference to a resource by id or by name, as a caller gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref(String);

impl Ref {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid(field, "required: an id or a name"));
        }
        if s.len() > 64 {
            return Err(Error::invalid(field, "an id or name is at most 64 characters"));
        }
        Ok(Self(s.to_string()))
    }

    /// A reference the code itself names (the default network).
    pub fn from_static(s: &'static str) -> Self {
        Self(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host interface name for a bridge or a veth host end: the kernel's
/// IFNAMSIZ limit, a safe alphabet, and the prefix of links ctnet owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkName(String);

impl LinkName {
    pub fn parse(field: &str, s: &str, prefix: &str) -> Result<Self> {
        if s.is_empty() || s.len() > 15 {
            return Err(Error::invalid(
                field,
                format!("{s:?} must be 1-15 bytes (the kernel's interface name limit)"),
            ));
        }
        let alphabet =
            s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !alphabet || s.contains("..") {
            return Err(Error::invalid(
                field,
                format!("{s:?} may only hold letters, digits, '_', '.' and '-'"),
            ));
        }
        if !s.starts_with(prefix) || s.len() == prefix.len() {
            return Err(Error::invalid(
                field,
                format!("{s:?} must start with {prefix:?}, the prefix of links ctnet owns"),
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// The bridge of a network that names none: prefix, '-', short id.
    pub fn for_network(prefix: &str, id: &NetworkId) -> Self {
        Self(format!("{prefix}-{}", id.short()))
    }

    /// The host end of interface `index` of a sandbox: prefix, 'v', short
    /// id, index in one hex digit (so at most 16 interfaces).
    pub fn for_endpoint(prefix: &str, id: &SandboxId, index: usize) -> Self {
        Self(format!("{prefix}v{}{index:x}", id.short()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits() {
        let id = SandboxId::random();
        assert_eq!(SandboxId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.short().len(), SHORT_LEN);
        for bad in ["", "0123", "0123456789abcdeg", "0123456789ABCDEF", "0123456789abcdef0"] {
            assert!(SandboxId::parse(bad).is_none(), "{bad}");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SandboxId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<NetworkId>("\"x\"").is_err());
    }

    #[test]
    fn link_names() {
        assert!(LinkName::parse("b", "ct-web", "ct").is_ok());
        for bad in ["docker0", "ct", "ct-abcdefghijklmn", "ct a", "ct..x", ""] {
            assert!(LinkName::parse("b", bad, "ct").is_err(), "{bad}");
        }
        let id = SandboxId::parse("0123456789abcdef").unwrap();
        assert_eq!(LinkName::for_endpoint("ct", &id, 15).as_str(), "ctv0123456789f");
    }

    #[test]
    fn refs() {
        assert!(Ref::parse("sandbox", "").is_err());
        assert!(Ref::parse("sandbox", &"x".repeat(65)).is_err());
        assert_eq!(Ref::parse("sandbox", "web").unwrap().as_str(), "web");
    }
}
