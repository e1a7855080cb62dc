//! Sockets listening in the host namespace, over NETLINK_SOCK_DIAG: a port a
//! host process listens on must not be published, or DNAT would silently
//! steal its traffic (Docker answers "address already in use").
use std::net::IpAddr;

use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

use crate::error::{Cause, ExecError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub protocol: &'static str,
    pub address: IpAddr,
    pub port: u16,
}

/// TCP sockets in LISTEN and bound UDP sockets, IPv4 and IPv6. Blocking:
/// call from a blocking context.
pub fn list() -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        out.extend(dump(family, IPPROTO_TCP, StateFlags::LISTEN, "tcp")?);
        out.extend(dump(family, IPPROTO_UDP, StateFlags::all(), "udp")?);
    }
    out.sort_by_key(|l| (l.protocol, l.port, l.address));
    out.dedup();
    Ok(out)
}

fn dump(family: u8, protocol: u8, states: StateFlags, name: &'static str) -> Result<Vec<Listener>> {
    let err = |e: std::io::Error| ExecError::step("sock_diag", e);
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(err)?;
    socket.bind_auto().map_err(err)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(err)?;
    let socket_id = if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let request =
        InetRequest { family, protocol, extensions: ExtensionFlags::empty(), states, socket_id };
    let mut packet = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    socket.send(&buf, 0).map_err(err)?;

    let mut found = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let size = socket.recv(&mut &mut rx[..], 0).map_err(err)?;
        let mut offset = 0;
        while offset < size {
            let part = rx.get(offset..size).unwrap_or_default();
            let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(part)
                .map_err(|e| ExecError::step("sock_diag reply", e))?;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    found.push(Listener {
                        protocol: name,
                        address: r.header.socket_id.source_address,
                        port: r.header.socket_id.source_port,
                    })
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(e) => {
                    return Err(ExecError::step("sock_diag", Cause::Reply(-e.raw_code())))
                }
                _ => {}
            }
            if msg.header.length == 0 {
                break;
            }
            offset += msg.header.length as usize;
        }
    }
}
