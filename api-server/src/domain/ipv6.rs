//! IPv6 field types: subnets, the reserved ranges, the host's ULA prefix.
//! Addresses are u128 arithmetic throughout: nothing here ever walks a
//! prefix, so a /64 costs what a /120 does.
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Prefix lengths a network may have: wide enough for a site's /32, narrow
/// enough to hold a gateway and a few sandboxes.
pub const PREFIX_RANGE: std::ops::RangeInclusive<u8> = 32..=124;

/// Exactly the ranges the issue names: unspecified and IPv4-compatible,
/// link-local, site-local (deprecated) and multicast. 2001:db8::/32
/// (documentation) and fc00::/7 (ULA) stay allowed.
const RESERVED: [(Subnet6, &str); 4] = [
    (reserved_range(0, 8), "reserved (unspecified, loopback, IPv4-compatible)"),
    (reserved_range(0xfe80, 10), "link-local"),
    (reserved_range(0xfec0, 10), "site-local (deprecated)"),
    (reserved_range(0xff00, 8), "multicast"),
];

/// A subnet whose base is `first16::`, for the table above.
const fn reserved_range(first16: u16, prefix: u8) -> Subnet6 {
    Subnet6 { base: Ipv6Addr::new(first16, 0, 0, 0, 0, 0, 0, 0), prefix }
}

/// A canonical IPv6 subnet (no host bits set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subnet6 {
    pub base: Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let net = parse_cidr(field, s)?;
        if !PREFIX_RANGE.contains(&net.prefix) {
            let (lo, hi) = (PREFIX_RANGE.start(), PREFIX_RANGE.end());
            let why = format!("prefix length {} is outside {lo}-{hi}", net.prefix);
            return Err(Error::invalid(field, why));
        }
        if let Some((range, what)) = reserved().find(|(r, _)| net.overlaps(r)) {
            return Err(Error::invalid(
                field,
                format!("{s:?} overlaps {range}, {what}, which no network may use"),
            ));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0)
    }
    pub fn overlaps(&self, other: &Subnet6) -> bool {
        let m = self.mask() & other.mask();
        u128::from(self.base) & m == u128::from(other.base) & m
    }
    /// First and last addresses a host may hold: the all-zeros address is
    /// the subnet-router anycast address (RFC 4291), never handed out.
    pub fn hosts(&self) -> (u128, u128) {
        (u128::from(self.base) + 1, u128::from(self.base) | !self.mask())
    }
    pub fn is_host(&self, a: Ipv6Addr) -> bool {
        let (lo, hi) = self.hosts();
        (lo..=hi).contains(&u128::from(a))
    }
    /// The `index`th subnet of length `prefix` inside this one.
    pub fn child(&self, prefix: u8, index: u128) -> Subnet6 {
        let shift = 128 - u32::from(prefix);
        let base = u128::from(self.base) | (index << shift);
        Subnet6 { base: Ipv6Addr::from(base), prefix }
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn reserved() -> impl Iterator<Item = (Subnet6, &'static str)> {
    RESERVED.iter().copied()
}

/// CIDR syntax and canonical form only; ranges are the caller's.
fn parse_cidr(field: &str, s: &str) -> Result<Subnet6> {
    let (a, p) = s.split_once('/').ok_or_else(|| {
        Error::invalid(field, format!("{s:?} is not in CIDR notation (ADDRESS/PREFIX)"))
    })?;
    let base = parse_ipv6(field, a)?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 128)
        .ok_or_else(|| Error::invalid(field, format!("{p:?} is not a prefix length")))?;
    let net = Subnet6 { base, prefix };
    if u128::from(base) & !net.mask() != 0 {
        let canon = Ipv6Addr::from(u128::from(base) & net.mask());
        return Err(Error::invalid(
            field,
            format!("{s:?} has host bits set; did you mean {canon}/{prefix}?"),
        ));
    }
    Ok(net)
}

pub fn parse_ipv6(field: &str, s: &str) -> Result<Ipv6Addr> {
    Ipv6Addr::from_str(s)
        .map_err(|_| Error::invalid(field, format!("{s:?} is not an IPv6 address")))
}

/// A dual-stack network's IPv6 side: its subnet and the bridge's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressing6 {
    pub subnet: Subnet6,
    pub gateway: Ipv6Addr,
}

impl Addressing6 {
    /// The first host address is the gateway.
    pub fn of(subnet: Subnet6) -> Self {
        Addressing6 { subnet, gateway: Ipv6Addr::from(subnet.hosts().0) }
    }

    pub fn parse(field: &str, subnet: &str, gateway: Option<&str>) -> Result<Self> {
        let subnet = Subnet6::parse(field, subnet)?;
        let Some(g) = gateway else { return Ok(Self::of(subnet)) };
        let gateway = parse_ipv6("ipv6_gateway", g)?;
        if !subnet.is_host(gateway) {
            return Err(Error::invalid(
                "ipv6_gateway",
                format!("{gateway} is not a usable host address of {subnet}"),
            ));
        }
        Ok(Addressing6 { subnet, gateway })
    }
}

/// This host's ULA /48 (RFC 4193): fd00::/8 and 40 bits of a stable hash
/// of `identity` (the store's id, kept with the state), so a host keeps its
/// prefix across restarts and two hosts almost never share one. FNV-1a:
/// std's hasher may change between Rust releases, this may not.
pub fn ula_prefix(identity: &str) -> Subnet6 {
    let hash = identity
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let global_id = u128::from(hash & 0xff_ffff_ffff);
    let base = (0xfd_u128 << 120) | (global_id << 80);
    Subnet6 { base: Ipv6Addr::from(base), prefix: 48 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_are_refused_exactly_and_their_neighbours_allowed() {
        for bad in [
            "::/64",
            "0:0:0:1::/64",
            "::ffff:0:0/96",
            "fe80::/64",
            "febf::/64",
            "fec0::/64",
            "feff::/64",
            "ff02::/64",
            "ff00::/32",
        ] {
            let e = Subnet6::parse("ipv6_subnet", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("ipv6_subnet:") && e.contains("no network may use"),
                "{bad}: {e}"
            );
        }
        for ok in [
            "100::/64",
            "2001:db8::/32",
            "2001:db8:5::/64",
            "fd00::/64",
            "fe7f::/64",
            "fe00::/64",
            "fb00::/64",
        ] {
            assert!(Subnet6::parse("ipv6_subnet", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_subnets_say_what_to_fix() {
        let cases = [
            ("2001:db8::", "CIDR"),
            ("2001:db8::1/64", "host bits set; did you mean 2001:db8::/64"),
            ("2001:db8::/125", "outside 32-124"),
            ("2000::/16", "outside 32-124"),
            ("2001:db8::/129", "not a prefix length"),
            ("192.0.2.0/24", "not an IPv6 address"),
        ];
        for (bad, why) in cases {
            let e = Subnet6::parse("ipv6_subnet", bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn hosts_gateway_and_children() {
        let s = Subnet6::parse("s", "2001:db8:5::/64").unwrap();
        let a = Addressing6::of(s);
        assert_eq!(a.gateway, "2001:db8:5::1".parse::<Ipv6Addr>().unwrap());
        assert!(!s.is_host("2001:db8:5::".parse().unwrap()), "subnet-router anycast");
        assert!(s.is_host("2001:db8:5::ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!s.is_host("2001:db8:6::1".parse().unwrap()));
        let e = Addressing6::parse("ipv6_subnet", "2001:db8:5::/64", Some("2001:db8:6::1"));
        assert!(e.unwrap_err().to_string().starts_with("ipv6_gateway:"));
        let ula = ula_prefix("store-1");
        assert_eq!(ula, ula_prefix("store-1"), "stable");
        assert_ne!(ula, ula_prefix("store-2"));
        assert_eq!(ula.base.segments()[0] >> 8, 0xfd);
        let third = ula.child(64, 3);
        assert_eq!(third.base.segments()[3], 3);
        assert!(ula.overlaps(&third) && !third.overlaps(&ula.child(64, 4)));
    }
}
