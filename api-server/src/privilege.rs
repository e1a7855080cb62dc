//! ctnet-api holds no privilege. Started as root with --user, it prepares
//! what needs root (its socket, its state directory) and then becomes that
//! user for good: no capabilities, no_new_privs. Started as root without
//! --user it refuses, unless told --allow-root.
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct Account {
    pub uid: Uid,
    pub gid: Gid,
}

/// "NAME", "UID" or "UID:GID".
pub fn parse_account(s: &str) -> Result<Account, BoxError> {
    if let Some((u, g)) = s.split_once(':') {
        return Ok(Account { uid: Uid::from_raw(u.parse()?), gid: Gid::from_raw(g.parse()?) });
    }
    if let Ok(n) = s.parse::<u32>() {
        return Ok(Account { uid: Uid::from_raw(n), gid: Gid::from_raw(n) });
    }
    let user = User::from_name(s)?.ok_or_else(|| format!("--user: no user {s:?}"))?;
    Ok(Account { uid: user.uid, gid: user.gid })
}

pub fn group_id(name: &str) -> Result<Gid, BoxError> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    Ok(Group::from_name(name)?.ok_or_else(|| format!("--socket-group: group {name:?} does not exist (create it, or pass --socket-group '')"))?.gid)
}

/// Makes the state directory the account's, without following anything a
/// compromised ctnet-api could have planted there: the directory itself is
/// opened with O_NOFOLLOW and changed through its descriptor (mode 0700), and
/// its entries are only checked, never changed. Root refuses to go on if an
/// entry is not a regular file with one link owned by the account (a symlink
/// or hard link to, say, /etc/shadow would otherwise be handed over).
pub fn hand_over_state(dir: &Path, to: Account) -> Result<(), BoxError> {
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::{fchmod, fstatat, Mode, SFlag};
    std::fs::create_dir_all(dir)?;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(dir, flags, Mode::empty()).map_err(|e| {
        format!("--state-dir {}: {e} (it must be a directory, not a link)", dir.display())
    })?;
    nix::unistd::fchown(&fd, Some(to.uid), Some(to.gid))?;
    fchmod(&fd, Mode::from_bits_truncate(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let st = fstatat(&fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let regular =
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG;
        if !regular || st.st_nlink != 1 || st.st_uid != to.uid.as_raw() {
            return Err(format!(
                "refusing to start: {:?} in the state directory is not a regular file with one link owned by uid {}; \
                 remove it or fix its owner",
                name,
                to.uid
            )
            .into());
        }
    }
    Ok(())
}

/// Becomes `to` for good. A credential change clears the parent-death
/// signal, so it is set again (test harnesses and launchers rely on it).
pub fn become_account(to: Account) -> Result<(), BoxError> {
    let pdeathsig = nix::sys::prctl::get_pdeathsig()?;
    // While still root (CAP_SETPCAP): an empty bounding set, so nothing
    // exec'd later can regain a capability.
    caps::clear(None, caps::CapSet::Bounding)?;
    nix::unistd::setgroups(&[])?;
    nix::unistd::setresgid(to.gid, to.gid, to.gid)?;
    nix::unistd::setresuid(to.uid, to.uid, to.uid)?;
    nix::sys::prctl::set_no_new_privs()?;
    if let Some(sig) = pdeathsig {
        nix::sys::prctl::set_pdeathsig(sig)?;
    }
    Ok(())
}

/// Refuses to go on with any capability or as root (unless allowed).
pub fn verify(allow_root: bool) -> Result<(), BoxError> {
    if Uid::current().is_root() && !allow_root {
        return Err(
            "ctnet-api refuses to run as root: pass --user ctnet-api (or --allow-root)".into()
        );
    }
    if allow_root {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    for set in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let value = status.lines().find_map(|l| l.strip_prefix(set)).map(str::trim).unwrap_or("?");
        if u64::from_str_radix(value, 16) != Ok(0) {
            return Err(format!(
                "ctnet-api still holds capabilities ({set} {value}); refusing to serve"
            )
            .into());
        }
    }
    Ok(())
}
