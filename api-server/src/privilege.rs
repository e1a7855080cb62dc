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

/// Makes the state directory (and the store in it) the account's.
pub fn hand_over_state(dir: &Path, to: Account) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    nix::unistd::chown(dir, Some(to.uid), Some(to.gid))?;
    for entry in std::fs::read_dir(dir)? {
        nix::unistd::chown(&entry?.path(), Some(to.uid), Some(to.gid))?;
    }
    Ok(())
}

/// Becomes `to` for good. A credential change clears the parent-death
/// signal, so it is set again (test harnesses and launchers rely on it).
pub fn become_account(to: Account) -> Result<(), BoxError> {
    let pdeathsig = nix::sys::prctl::get_pdeathsig()?;
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
