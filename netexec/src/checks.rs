//! netexec trusts nothing: every executor request is parsed again into these
//! types before anything touches the kernel, and only names carrying our
//! prefix, pins in our own directory and true namespace files get through.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{ExecError, Result};

/// statfs magic of the nsfs filesystem that namespace files live on.
pub const NSFS_MAGIC: i64 = 0x6e73_6673;
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAMSIZ_MAX: usize = 15;

fn invalid(field: &str, why: impl std::fmt::Display) -> ExecError {
    ExecError::InvalidArgument(format!("{field}: {why}"))
}

/// An interface name that carries the executor's prefix: the only host links
/// it will create, change or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLinkName(String);

impl OwnedLinkName {
    pub fn parse(field: &str, name: &str, prefix: &str) -> Result<Self> {
        check_ifname(field, name)?;
        if !name.starts_with(prefix) || name.len() == prefix.len() {
            return Err(ExecError::PermissionDenied(format!(
                "{field}: {name:?} does not carry the prefix {prefix:?}; netexec only touches its own links"
            )));
        }
        Ok(Self(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An interface name inside a sandbox: "eth" followed by a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxIfName(String);

impl SandboxIfName {
    pub fn parse(field: &str, name: &str) -> Result<Self> {
        check_ifname(field, name)?;
        // The namespace's loopback is not an interface a sandbox is given.
        if name == "lo" {
            return Err(invalid(field, "\"lo\" is the namespace's loopback"));
        }
        Ok(Self(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_ifname(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > IFNAMSIZ_MAX {
        return Err(invalid(field, format!("{name:?} must be 1-{IFNAMSIZ_MAX} bytes")));
    }
    let ok = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok || name == "." || name == ".." {
        return Err(invalid(field, format!("{name:?} may only hold [A-Za-z0-9_.-]")));
    }
    Ok(())
}

/// A sandbox id: 16 lower-case hex digits. Used as the pin's file name, so
/// this check is also what keeps pins inside the netns directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxId(String);

impl SandboxId {
    pub fn parse(field: &str, id: &str) -> Result<Self> {
        let ok = id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(invalid(field, format!("{id:?} is not 16 lower-case hex digits")));
        }
        Ok(Self(id.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An owner tag, stored in link aliases as "ctnet:<owner>".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

pub const ALIAS_PREFIX: &str = "ctnet:";

impl Owner {
    pub fn parse(field: &str, owner: &str) -> Result<Self> {
        let ok = !owner.is_empty()
            && owner.len() <= 64
            && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'-');
        if !ok {
            return Err(invalid(field, format!("{owner:?} must be 1-64 of [A-Za-z0-9:-]")));
        }
        Ok(Self(owner.to_string()))
    }
    pub fn alias(&self) -> String {
        format!("{ALIAS_PREFIX}{}", self.0)
    }
    /// The bare tag, e.g. "sb:<id>" (used as nft element comments).
    pub fn tag(&self) -> &str {
        &self.0
    }
}

/// An IPv4 address with its prefix length, "a.b.c.d/len".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPrefix {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl AddrPrefix {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| invalid(field, format!("{s:?} is not ADDRESS/PREFIX")))?;
        let addr: Ipv4Addr =
            a.parse().map_err(|_| invalid(field, format!("{a:?} is not an IPv4 address")))?;
        let prefix: u8 =
            p.parse().map_err(|_| invalid(field, format!("{p:?} is not a prefix length")))?;
        if !(1..=31).contains(&prefix)
            || addr.is_unspecified()
            || addr.is_loopback()
            || addr.is_multicast()
        {
            return Err(invalid(
                field,
                format!("{s:?} is not a usable unicast address and prefix"),
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl AddrPrefix {
    /// A canonical subnet: no host bits set.
    pub fn parse_subnet(field: &str, s: &str) -> Result<Self> {
        let net = Self::parse(field, s)?;
        let mask = u32::MAX << (32 - net.prefix);
        if u32::from(net.addr) & !mask != 0 {
            return Err(invalid(field, format!("{s:?} has host bits set")));
        }
        Ok(net)
    }

    /// `parse`, with empty meaning none (no IPv4 on that side).
    pub fn parse_opt(field: &str, s: &str) -> Result<Option<Self>> {
        (!s.is_empty()).then(|| Self::parse(field, s)).transpose()
    }

    /// `parse_subnet`, with empty meaning none (an IPv6-only network).
    pub fn parse_subnet_opt(field: &str, s: &str) -> Result<Option<Self>> {
        (!s.is_empty()).then(|| Self::parse_subnet(field, s)).transpose()
    }
}

/// An IPv4 gateway: another address of `on`'s subnet; empty is None.
pub fn parse_gateway(field: &str, s: &str, on: Option<&AddrPrefix>) -> Result<Option<Ipv4Addr>> {
    if s.is_empty() {
        return Ok(None);
    }
    let on = on.ok_or_else(|| invalid(field, "a gateway needs an IPv4 address"))?;
    let gw: Ipv4Addr =
        s.parse().map_err(|_| invalid(field, format!("{s:?} is not an IPv4 address")))?;
    let mask = u32::MAX << (32 - on.prefix);
    if u32::from(gw) & mask != u32::from(on.addr) & mask || gw == on.addr {
        return Err(invalid(
            field,
            format!("{gw} is not another address in {}/{}", on.addr, on.prefix),
        ));
    }
    Ok(Some(gw))
}

/// An IPv6 address with its prefix length, "ADDR/len": global or ULA
/// unicast only (never loopback, link-local or multicast), prefix 1-127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr6Prefix {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Addr6Prefix {
    /// Empty is None: IPv6 is optional wherever it appears.
    pub fn parse_opt(field: &str, s: &str) -> Result<Option<Self>> {
        if s.is_empty() {
            return Ok(None);
        }
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| invalid(field, format!("{s:?} is not ADDRESS/PREFIX")))?;
        let addr: Ipv6Addr =
            a.parse().map_err(|_| invalid(field, format!("{a:?} is not an IPv6 address")))?;
        let prefix: u8 =
            p.parse().map_err(|_| invalid(field, format!("{p:?} is not a prefix length")))?;
        let link_local = addr.segments()[0] & 0xffc0 == 0xfe80;
        if !(1..=127).contains(&prefix)
            || addr.is_unspecified()
            || addr.is_loopback()
            || addr.is_multicast()
            || link_local
        {
            return Err(invalid(
                field,
                format!("{s:?} is not a usable unicast address and prefix"),
            ));
        }
        Ok(Some(Self { addr, prefix }))
    }

    pub fn mask(&self) -> u128 {
        u128::MAX << (128 - u32::from(self.prefix))
    }

    /// A canonical subnet: no host bits set.
    pub fn parse_subnet_opt(field: &str, s: &str) -> Result<Option<Self>> {
        let net = Self::parse_opt(field, s)?;
        if net.is_some_and(|n| u128::from(n.addr) & !n.mask() != 0) {
            return Err(invalid(field, format!("{s:?} has host bits set")));
        }
        Ok(net)
    }
}

/// An IPv6 gateway: another address of `on`'s subnet; empty is None.
pub fn parse_gateway6(field: &str, s: &str, on: Option<&Addr6Prefix>) -> Result<Option<Ipv6Addr>> {
    if s.is_empty() {
        return Ok(None);
    }
    let on = on.ok_or_else(|| invalid(field, "a gateway needs an IPv6 address"))?;
    let gw: Ipv6Addr =
        s.parse().map_err(|_| invalid(field, format!("{s:?} is not an IPv6 address")))?;
    if u128::from(gw) & on.mask() != u128::from(on.addr) & on.mask() || gw == on.addr {
        return Err(invalid(
            field,
            format!("{gw} is not another address in {}/{}", on.addr, on.prefix),
        ));
    }
    Ok(Some(gw))
}

pub fn parse_mac(field: &str, mac: &[u8]) -> Result<[u8; 6]> {
    let mac: [u8; 6] = mac
        .try_into()
        .map_err(|_| invalid(field, format!("a MAC address has 6 bytes, not {}", mac.len())))?;
    if mac == [0; 6] || mac[0] & 1 == 1 {
        return Err(invalid(field, "a MAC address must be unicast and not all zeros"));
    }
    Ok(mac)
}

pub fn parse_mtu(field: &str, mtu: u32) -> Result<u32> {
    match mtu {
        0 => Ok(1500),
        68..=65535 => Ok(mtu),
        _ => Err(invalid(field, format!("{mtu} is outside 68-65535"))),
    }
}

/// A namespace the caller names: one of our pins, or a runtime's pin,
/// already opened (so what was checked is what gets used).
#[derive(Debug)]
pub enum NetnsTarget {
    Owned(SandboxId),
    External(std::fs::File),
}

/// A directory runtimes pin namespaces in, held open.
pub struct AllowedDir {
    pub path: PathBuf,
    pub fd: std::os::fd::OwnedFd,
}

/// NS_GET_NSTYPE: which kind of namespace a nsfs file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// A namespace pinned by someone else must lie in an allowed directory, be
/// reached without symlinks or `..` (openat2 RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS from that directory), be a network namespace file,
/// and not be the host's own namespace.
pub fn external_netns(
    field: &str,
    path: &str,
    dirs: &[AllowedDir],
    host: (u64, u64),
) -> Result<std::fs::File> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(invalid(field, format!("{path:?} must be an absolute path without '..'")));
    }
    let dir = dirs.iter().find(|d| p.starts_with(&d.path)).ok_or_else(|| {
        let allowed: Vec<String> = dirs.iter().map(|d| d.path.display().to_string()).collect();
        ExecError::PermissionDenied(format!(
            "{field}: {path:?} is not inside an allowed directory ({})",
            allowed.join(", ")
        ))
    })?;
    let Ok(rel) = p.strip_prefix(&dir.path) else {
        return Err(ExecError::PermissionDenied(format!(
            "{field}: {path:?} is outside {}",
            dir.path.display()
        )));
    };
    if rel.as_os_str().is_empty() {
        return Err(invalid(
            field,
            format!("{path:?} is the directory itself, not a namespace file"),
        ));
    }
    // O_PATH opens nothing: a FIFO, a device or a file on a hung mount is
    // only named, never opened, so this cannot block or have side effects.
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = nix::fcntl::openat2(&dir.fd, rel, how).map_err(|e| match e {
        nix::errno::Errno::ELOOP => {
            invalid(field, format!("{path:?} is or passes through a symbolic link"))
        }
        nix::errno::Errno::ENOENT => invalid(field, format!("{path:?} does not exist")),
        e => invalid(field, format!("{path:?}: {e}")),
    })?;
    let not_netns = || invalid(field, format!("{path:?} is not a network namespace file"));
    let fs = nix::sys::statfs::fstatfs(&fd).map_err(|e| ExecError::step("fstatfs", e))?;
    if fs.filesystem_type().0 != NSFS_MAGIC {
        return Err(not_netns());
    }
    // Only a namespace file is opened for real, through its O_PATH
    // descriptor (the same inode, whatever the path names by now).
    let reopen = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let file =
        std::fs::File::open(reopen).map_err(|e| ExecError::step("reopen namespace file", e))?;
    // SAFETY: ioctl on an fd we own, no pointer argument.
    let kind = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(not_netns());
    }
    let meta = file.metadata().map_err(|e| ExecError::step("fstat", e))?;
    if (meta.dev(), meta.ino()) == host {
        return Err(ExecError::PermissionDenied(format!(
            "{field}: {path:?} is the host's own namespace"
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_need_the_prefix() {
        assert!(OwnedLinkName::parse("f", "ctv0123", "ct").is_ok());
        assert!(matches!(
            OwnedLinkName::parse("f", "eth0", "ct"),
            Err(ExecError::PermissionDenied(_))
        ));
        assert!(matches!(
            OwnedLinkName::parse("f", "lo", "ct"),
            Err(ExecError::PermissionDenied(_))
        ));
        assert!(matches!(
            OwnedLinkName::parse("f", "ct", "ct"),
            Err(ExecError::PermissionDenied(_))
        ));
        assert!(OwnedLinkName::parse("f", "ct/../x", "ct").is_err());
        assert!(OwnedLinkName::parse("f", "ct0123456789abcd", "ct").is_err());
    }

    #[test]
    fn sandbox_ids_cannot_escape_the_directory() {
        assert!(SandboxId::parse("f", "0123456789abcdef").is_ok());
        for bad in ["", "host", "../../etc/passwd", "0123456789ABCDEF", "0123456789abcde/"] {
            assert!(SandboxId::parse("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_and_gateways() {
        let a = AddrPrefix::parse("f", "198.18.0.2/16").unwrap();
        assert_eq!(
            parse_gateway("g", "198.18.0.1", Some(&a)).unwrap(),
            Some(Ipv4Addr::new(198, 18, 0, 1))
        );
        assert!(parse_gateway("g", "198.19.0.1", Some(&a)).is_err());
        assert!(parse_gateway("g", "198.18.0.1", None).is_err(), "a gateway without an address");
        assert!(AddrPrefix::parse("f", "198.18.0.2").is_err());
        assert!(AddrPrefix::parse("f", "127.0.0.1/8").is_err());
        assert!(parse_mac("m", &[1, 2, 3, 4, 5, 6]).is_err());
        assert!(parse_mac("m", &[2, 0x42, 3, 4, 5, 6]).is_ok());
    }
}

#[cfg(test)]
mod properties {
    //! Whatever a caller sends, what passes validation is safe to use: link
    //! names stay ours and kernel-sized, pin names cannot leave the pin
    //! directory, tags cannot break out of nft text, and nothing panics.
    use std::net::Ipv4Addr;
    use std::path::{Component, Path};

    use proptest::prelude::*;

    use super::*;
    use crate::firewall;

    proptest! {
        #[test]
        fn link_names_that_pass_are_ours_and_fit(name in "\\PC{0,24}") {
            if let Ok(n) = OwnedLinkName::parse("f", &name, "ct") {
                prop_assert!(n.as_str().starts_with("ct") && n.as_str().len() > 2 && n.as_str().len() <= 15);
                prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
            }
        }

        #[test]
        fn pin_names_that_pass_stay_in_the_directory(id in "\\PC{0,40}") {
            if let Ok(id) = SandboxId::parse("f", &id) {
                let p = Path::new("/run/ctnet/netns").join(id.as_str());
                prop_assert_eq!(p.parent(), Some(Path::new("/run/ctnet/netns")));
                prop_assert!(p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
            }
        }

        #[test]
        fn owner_tags_cannot_escape_nft_text(tag in "\\PC{0,80}") {
            if let Ok(o) = Owner::parse("f", &tag) {
                let unsafe_chars = ['"', ' ', ';', '\n', '}', '#'];
                prop_assert!(!o.tag().contains(unsafe_chars), "tag {:?}", o.tag());
            }
        }

        #[test]
        fn addresses_round_trip(a in any::<u32>(), prefix in 0u8..=32) {
            let text = format!("{}/{prefix}", Ipv4Addr::from(a));
            match AddrPrefix::parse("f", &text) {
                Ok(p) => prop_assert_eq!(format!("{}/{}", p.addr, p.prefix), text),
                Err(_) => {
                    let addr = Ipv4Addr::from(a);
                    prop_assert!(prefix == 0 || prefix == 32 || addr.is_unspecified() || addr.is_loopback() || addr.is_multicast());
                }
            }
        }

        #[test]
        fn firewall_ports_never_panic_and_are_nonzero(
            proto in "\\PC{0,6}", host_ip in "\\PC{0,16}", host_port in any::<u32>(),
            target_ip in "\\PC{0,16}", target_port in any::<u32>(), owner in "\\PC{0,20}",
        ) {
            let p = ctnet_proto::exec::FirewallPort { protocol: proto, host_ip, host_port, target_ip, target_port, owner, routed: false };
            if let Ok(port) = firewall::parse_port("p", &p) {
                prop_assert!(port.host_port != 0 && port.target_port != 0);
            }
        }

        #[test]
        fn external_paths_never_panic(path in "\\PC{0,64}") {
            let _ = external_netns("f", &path, &[], (0, 0));
        }
    }
}
