//! Field types shared by every resource: names, labels, subnets, addresses.
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A resource name: 1-64 of [A-Za-z0-9_.-], starting with a letter or digit,
/// so it can never be a path, a parent reference or contain spaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > 64 {
            return Err(Error::invalid(field, format!("{s:?} must be 1-64 characters long")));
        }
        let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        let rest_ok =
            s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || s.contains("..") {
            return Err(Error::invalid(
                field,
                format!("{s:?} may only hold letters, digits, '_', '.' and '-', start with a letter or digit, and not contain '..'"),
            ));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Labels = BTreeMap<String, String>;

pub fn parse_labels(
    field: &str,
    raw: &std::collections::HashMap<String, String>,
) -> Result<Labels> {
    if raw.len() > 64 {
        return Err(Error::invalid(field, "at most 64 labels"));
    }
    for (k, v) in raw {
        if k.is_empty() || k.len() > 128 || k.chars().any(|c| c.is_control() || c == '=') {
            return Err(Error::invalid(
                field,
                format!("label key {k:?} must be 1-128 printable characters without '='"),
            ));
        }
        if v.len() > 1024 || v.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("label {k:?}: value must be at most 1024 printable characters"),
            ));
        }
    }
    Ok(raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// True when `labels` holds every pair of `selector`.
pub fn labels_match(labels: &Labels, selector: &std::collections::HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Ranges no network may overlap: "this network", loopback, link-local,
/// multicast and the reserved class E. Documentation, benchmark (198.18/15)
/// and CGNAT (100.64/10) ranges stay allowed.
const RESERVED: [(Subnet, &str); 5] = [
    (Subnet { base: Ipv4Addr::new(0, 0, 0, 0), prefix: 8 }, "\"this network\""),
    (Subnet { base: Ipv4Addr::new(127, 0, 0, 0), prefix: 8 }, "loopback"),
    (Subnet { base: Ipv4Addr::new(169, 254, 0, 0), prefix: 16 }, "link-local"),
    (Subnet { base: Ipv4Addr::new(224, 0, 0, 0), prefix: 4 }, "multicast"),
    (Subnet { base: Ipv4Addr::new(240, 0, 0, 0), prefix: 4 }, "reserved (class E)"),
];

/// A canonical IPv4 subnet (no host bits set), prefix 8-30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            Error::invalid(field, format!("{s:?} is not in CIDR notation (ADDRESS/PREFIX)"))
        })?;
        let base = Ipv4Addr::from_str(a)
            .map_err(|_| Error::invalid(field, format!("{a:?} is not an IPv4 address")))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| Error::invalid(field, format!("{p:?} is not a prefix length")))?;
        if !(8..=30).contains(&prefix) {
            return Err(Error::invalid(field, format!("prefix length {prefix} is outside 8-30")));
        }
        let net = Subnet { base, prefix };
        if u32::from(base) & !net.mask() != 0 {
            let canon = Ipv4Addr::from(u32::from(base) & net.mask());
            return Err(Error::invalid(
                field,
                format!("{s:?} has host bits set; did you mean {canon}/{prefix}?"),
            ));
        }
        if let Some((range, what)) = RESERVED.iter().find(|(r, _)| net.overlaps(r)) {
            return Err(Error::invalid(
                field,
                format!("{s:?} overlaps {range}, {what}, which no network may use"),
            ));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.base) & m == u32::from(other.base) & m
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !self.mask())
    }
    /// First and last usable host addresses.
    pub fn hosts(&self) -> (u32, u32) {
        (u32::from(self.base) + 1, u32::from(self.broadcast()) - 1)
    }
    pub fn is_host(&self, a: Ipv4Addr) -> bool {
        let (lo, hi) = self.hosts();
        (lo..=hi).contains(&u32::from(a))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

pub fn parse_ipv4(field: &str, s: &str) -> Result<Ipv4Addr> {
    Ipv4Addr::from_str(s)
        .map_err(|_| Error::invalid(field, format!("{s:?} is not an IPv4 address")))
}

/// "ADDRESS/len", or empty for a family an interface or bridge does not
/// have (as both APIs write it).
pub fn prefixed<A: fmt::Display>(a: Option<(A, u8)>) -> String {
    a.map(|(a, p)| format!("{a}/{p}")).unwrap_or_default()
}

/// A unicast MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let bytes: Option<Vec<u8>> = (parts.len() == 6)
            .then(|| {
                parts
                    .iter()
                    .map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).ok() } else { None })
                    .collect()
            })
            .flatten();
        let Some(bytes) = bytes else {
            return Err(Error::invalid(
                field,
                format!("{s:?} is not a MAC address like 02:42:ac:11:00:02"),
            ));
        };
        let Ok(mac) = <[u8; 6]>::try_from(bytes) else {
            return Err(Error::invalid(field, format!("{s:?} is not a MAC address")));
        };
        if mac == [0; 6] || mac[0] & 1 == 1 {
            return Err(Error::invalid(
                field,
                format!("{s} must be a unicast address, not all zeros"),
            ));
        }
        Ok(Mac(mac))
    }

    /// Docker's scheme: 02:42 followed by the IPv4 address, so a reused
    /// address keeps its MAC and neighbours' caches stay right.
    pub fn from_ipv4(a: Ipv4Addr) -> Self {
        let o = a.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// For an interface without an IPv4 address to derive one from (as
    /// Docker does on IPv6-only networks): random, unicast, locally
    /// administered.
    pub fn random_local() -> Self {
        let mut m: [u8; 6] = rand::random();
        m[0] = (m[0] & !1) | 2;
        Mac(m)
    }

    /// Whether this is the MAC `address` would derive.
    pub fn is_derived_from(&self, address: Option<Ipv4Addr>) -> bool {
        address.is_some_and(|a| *self == Self::from_ipv4(a))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Name::parse("n", "web-1.a_b").is_ok());
        for bad in ["", "a b", "a/b", "..", "a..b", "-x", ".x", &"x".repeat(65)] {
            assert!(Name::parse("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subnets() {
        let s = Subnet::parse("s", "198.18.0.0/16").unwrap();
        assert_eq!(s.to_string(), "198.18.0.0/16");
        assert!(s.is_host("198.18.255.254".parse().unwrap()));
        assert!(!s.is_host("198.18.255.255".parse().unwrap()));
        assert!(s.overlaps(&Subnet::parse("s", "198.18.4.0/24").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("s", "198.19.0.0/24").unwrap()));
        for bad in
            ["198.18.0.1/16", "198.18.0.0", "x/16", "198.18.0.0/31", "127.0.0.0/8", "224.0.0.0/8"]
        {
            assert!(Subnet::parse("s", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_ranges_are_refused_and_their_neighbours_allowed() {
        let reserved = [
            "0.1.0.0/16",
            "127.5.0.0/16",
            "169.254.0.0/16",
            "169.254.7.0/24",
            "224.0.0.0/8",
            "239.1.0.0/16",
            "240.0.0.0/8",
            "255.255.255.0/24",
        ];
        for bad in reserved {
            let e = Subnet::parse("subnet", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("subnet:") && e.contains("which no network may use"),
                "{bad}: {e}"
            );
        }
        let allowed = [
            "1.0.0.0/16",
            "169.253.0.0/16",
            "169.255.0.0/16",
            "223.255.0.0/16",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "100.64.0.0/10",
        ];
        for ok in allowed {
            assert!(Subnet::parse("subnet", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(Mac::parse("m", "02:42:AC:11:00:02").unwrap().to_string(), "02:42:ac:11:00:02");
        for bad in ["01:00:00:00:00:01", "00:00:00:00:00:00", "02:42:ac:11:00", "zz:42:ac:11:00:02"]
        {
            assert!(Mac::parse("m", bad).is_err(), "{bad}");
        }
        assert_eq!(Mac::from_ipv4("198.18.0.2".parse().unwrap()).to_string(), "02:42:c6:12:00:02");
    }
}
