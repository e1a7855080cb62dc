//! Drift repair: nftables announces every committed transaction with an
//! NFT_MSG_NEWGEN event whose netlink header names the committing socket
//! (its port id) and whose attributes name the committing thread. A
//! generation that neither our writer's socket nor one of our own `nft`
//! children committed (`nft flush ruleset`, a firewall reload) means our
//! table may have changed behind our back, so it is rebuilt from the
//! desired state netexec mirrors.
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::nft::NftFirewall;

/// nfnetlink multicast group of nf_tables events.
const NFNLGRP_NFTABLES: u32 = 7;
/// (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN
const NEWGEN: u16 = (10 << 8) | 15;
const NFTA_GEN_PROC_PID: u16 = 2;

fn ne_u32(buf: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn ne_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

/// Who committed each generation, as events arrive: (port id, pid). A
/// truncated or malformed message ends the walk.
fn committers(buf: &[u8]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut off = 0;
    while let (Some(len), Some(kind)) = (ne_u32(buf, off), ne_u16(buf, off + 4)) {
        if len < 16 || off + len > buf.len() {
            break;
        }
        if kind == NEWGEN {
            let portid = ne_u32(buf, off + 12).unwrap_or_default() as u32;
            // After the netlink header (16) and nfgenmsg (4): attributes.
            let mut a = off + 20;
            while let (Some(alen), Some(atype)) = (ne_u16(buf, a), ne_u16(buf, a + 2)) {
                let alen = usize::from(alen);
                if alen < 4 || a + alen > off + len {
                    break;
                }
                let pid = buf.get(a + 4..a + 8).and_then(|b| <[u8; 4]>::try_from(b).ok());
                if atype & 0x3fff == NFTA_GEN_PROC_PID && alen >= 8 {
                    out.extend(pid.map(|p| (portid, u32::from_be_bytes(p))));
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

fn subscribe() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1)))?;
    Ok(socket)
}

/// Repairs done by this process (reported in Ping, for events and metrics).
pub static REPAIRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Watches for foreign generations on a dedicated thread (blocking recv)
/// and repairs on the runtime, coalescing bursts.
pub fn watch(fw: Arc<NftFirewall>) -> io::Result<()> {
    let socket = subscribe()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, u32)>();
    std::thread::Builder::new().name("ctnet-nft-events".into()).spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => {
                    for who in committers(buf.get(..n).unwrap_or_default()) {
                        if tx.send(who).is_err() {
                            return;
                        }
                    }
                }
                // ENOBUFS: events were lost, so assume the worst.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    let _ = tx.send((0, 0));
                }
                Err(e) => {
                    tracing::error!(error = %e, "nftables event socket failed; drift repair stops");
                    return;
                }
            }
        }
    })?;
    tokio::spawn(async move {
        while let Some((portid, pid)) = rx.recv().await {
            if fw.is_own(portid, pid) {
                continue;
            }
            // Let the foreign transaction burst finish, then repair once.
            tokio::time::sleep(Duration::from_millis(20)).await;
            while rx.try_recv().is_ok() {}
            match fw.restore().await {
                Ok(()) => {
                    REPAIRS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e) => tracing::error!(error = %e, "could not restore the nftables table"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_committing_pid() {
        // nlmsghdr(len=32, type=NEWGEN) + nfgenmsg + NFTA_GEN_ID(1) + NFTA_GEN_PROC_PID(4242, BE)
        let mut m = Vec::new();
        m.extend(32u32.to_ne_bytes());
        m.extend(super::NEWGEN.to_ne_bytes());
        m.extend([0u8; 6]);
        m.extend(77u32.to_ne_bytes());
        m.extend([0u8; 4]);
        m.extend(8u16.to_ne_bytes());
        m.extend(1u16.to_ne_bytes());
        m.extend(7u32.to_be_bytes());
        m.extend(8u16.to_ne_bytes());
        m.extend(2u16.to_ne_bytes());
        m.extend(4242u32.to_be_bytes());
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(super::committers(&m), vec![(77, 4242)]);
    }
}
