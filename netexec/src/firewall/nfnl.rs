//! nf_tables over netlink, hand-encoded (libnftnl is GPL): set element
//! additions and deletions as NFT_MSG_NEWSETELEM / DELSETELEM messages
//! between NFNL_MSG_BATCH_BEGIN and BATCH_END, which the kernel commits as
//! one transaction during the `sendmsg` itself. One socket stays open for
//! netexec's life: closing a netfilter socket right after a commit that
//! deleted something waits for the transaction's deferred cleanup (tens of
//! milliseconds, the largest part of an exec'd `nft`).
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, getsockname, recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags,
    NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use super::element::{Element, Part};
use super::render;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const NFPROTO_INET: u8 = 1;
const NFPROTO_BRIDGE: u8 = 7;
const LIST_TABLE: u16 = 1;
const LIST_SET: u16 = 2;
const LIST_ELEMENTS: u16 = 3;
const LIST_ELEM: u16 = 1;
const ELEM_KEY: u16 = 1;
const ELEM_DATA: u16 = 2;
const ELEM_FLAGS: u16 = 3;
const ELEM_USERDATA: u16 = 6;
const DATA_VALUE: u16 = 1;
const ELEM_INTERVAL_END: u32 = 1;
/// NFTNL_UDATA_SET_ELEM_COMMENT, the TLV nft reads comments from.
const UDATA_COMMENT: u8 = 0;
const IFNAMSIZ: usize = 16;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;

/// One netlink attribute, padded to 4 bytes.
pub(super) fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity(len.next_multiple_of(4));
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(len.next_multiple_of(4), 0);
    out
}

pub(super) fn nested(kind: u16, children: &[Vec<u8>]) -> Vec<u8> {
    attr(kind | NLA_F_NESTED, &children.concat())
}

fn cstr(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

/// A part in the kernel's layout; `padded` inside a concatenation, where
/// every component takes whole 4-byte registers.
fn part_bytes(p: &Part, padded: bool, out: &mut Vec<u8>) {
    let start = out.len();
    match p {
        Part::Name(n) => {
            out.extend_from_slice(n.as_bytes());
            out.resize(start + IFNAMSIZ, 0);
        }
        Part::Ip(ip) => out.extend_from_slice(&ip.octets()),
        Part::Ip6(ip) => out.extend_from_slice(&ip.octets()),
        Part::Net(net) => out.extend_from_slice(&net.addr.octets()),
        Part::Net6(net) => out.extend_from_slice(&net.addr.octets()),
        Part::Proto(p) => out.push(p.number()),
        Part::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
        Part::Mac(m) => out.extend_from_slice(m),
    }
    if padded {
        out.resize(start + (out.len() - start).next_multiple_of(4), 0);
    }
}

fn value(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        part_bytes(p, parts.len() > 1, &mut out);
    }
    out
}

/// The first address after a prefix: an interval's end element. None when
/// the prefix runs to the end of the address space (the interval is open).
fn interval_end(parts: &[Part]) -> Option<Vec<u8>> {
    match parts {
        [Part::Net(net)] => {
            let size = 1u64 << (32 - u32::from(net.prefix));
            let end = u64::from(u32::from(net.addr)) + size;
            u32::try_from(end).ok().map(|e| e.to_be_bytes().to_vec())
        }
        [Part::Net6(net)] => {
            let size = 1u128 << (128 - u32::from(net.prefix));
            u128::from(net.addr).checked_add(size).map(|e| e.to_be_bytes().to_vec())
        }
        _ => None,
    }
}

/// One LIST_ELEM per kernel element: an interval is its start and its end.
fn list_elems(e: &Element, full: bool) -> Vec<Vec<u8>> {
    let mut first = vec![nested(ELEM_KEY, &[attr(DATA_VALUE, &value(&e.key))])];
    if full && !e.data.is_empty() {
        first.push(nested(ELEM_DATA, &[attr(DATA_VALUE, &value(&e.data))]));
    }
    if let (true, Some(c)) = (full, &e.comment) {
        let mut udata = vec![UDATA_COMMENT, (c.len() + 1) as u8];
        udata.extend(cstr(c));
        first.push(attr(ELEM_USERDATA, &udata));
    }
    let mut out = vec![nested(LIST_ELEM, &first)];
    if let Some(end) = interval_end(&e.key) {
        let end = [
            nested(ELEM_KEY, &[attr(DATA_VALUE, &end)]),
            attr(ELEM_FLAGS, &ELEM_INTERVAL_END.to_be_bytes()),
        ];
        out.push(nested(LIST_ELEM, &end));
    }
    out
}

/// Family and name of the table a set lives in ("inet ctnet").
fn table_of(set: &str) -> (u8, &'static str) {
    let (family, name) = render::table_of(set).split_once(' ').unwrap_or(("inet", "ctnet"));
    (if family == "bridge" { NFPROTO_BRIDGE } else { NFPROTO_INET }, name)
}

/// Messages for one transaction, each with its own sequence number.
pub struct Batch {
    buf: Vec<u8>,
    next: u32,
    messages: usize,
}

impl Batch {
    pub fn new(first_seq: u32) -> Self {
        let mut b = Batch { buf: Vec::new(), next: first_seq, messages: 0 };
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES, &[]);
        b
    }

    fn message(&mut self, kind: u16, flags: u16, family: u8, res_id: u16, body: &[u8]) -> u32 {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        let len = 16 + 4 + body.len();
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(body);
        seq
    }

    fn element(&mut self, msg: u16, flags: u16, e: &Element) -> u32 {
        let (family, table) = table_of(e.set);
        self.element_in(msg, flags, family, table, e)
    }

    fn element_in(&mut self, msg: u16, flags: u16, family: u8, table: &str, e: &Element) -> u32 {
        let body = [
            attr(LIST_TABLE, &cstr(table)),
            attr(LIST_SET, &cstr(e.set)),
            nested(LIST_ELEMENTS, &list_elems(e, msg == NFT_MSG_NEWSETELEM)),
        ]
        .concat();
        self.messages += 1;
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        self.message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, family, 0, &body)
    }

    /// Adds `e`; an identical element already there is no error.
    pub fn add(&mut self, e: &Element) -> u32 {
        self.element(NFT_MSG_NEWSETELEM, NLM_F_CREATE, e)
    }

    /// Adds `e` to a set of that name in another inet table (the
    /// benchmark's floor has one of its own).
    pub fn add_to_inet_table(&mut self, table: &str, e: &Element) -> u32 {
        self.element_in(NFT_MSG_NEWSETELEM, NLM_F_CREATE, NFPROTO_INET, table, e)
    }

    /// Removes `e`, whether or not it is there: add-then-delete inside the
    /// transaction (DESTROYSETELEM needs kernel 6.3). Both sequence numbers.
    pub fn remove(&mut self, e: &Element) -> [u32; 2] {
        [self.add(e), self.element(NFT_MSG_DELSETELEM, 0, e)]
    }

    /// Element messages so far (BEGIN and END not counted).
    pub fn messages(&self) -> usize {
        self.messages
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The wire bytes, closed by BATCH_END (without it the kernel drops
    /// the whole batch silently), and the sequence after the last.
    pub fn finish(mut self) -> (Vec<u8>, u32) {
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES, &[]);
        (self.buf, self.next)
    }
}

/// (sequence, errno) of every ack in `buf`; errno 0 is success.
pub fn acks(buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let (Some(len), Some(kind), Some(seq), Some(err)) =
        (ne_u32(rest, 0), ne_u16(rest, 4), ne_u32(rest, 8), rest.get(16..20))
    {
        let len = len as usize;
        if len < 16 || len > rest.len() {
            break;
        }
        if kind == NLMSG_ERROR {
            let err = i32::from_ne_bytes(err.try_into().unwrap_or_default());
            out.push((seq, -err));
        }
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

fn ne_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

/// The kernel's answer to one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// Aborted: the messages the kernel refused, with their errno.
    Refused(Vec<(u32, i32)>),
}

/// The open socket, in the network namespace of the thread that made it.
pub struct Socket {
    fd: OwnedFd,
    portid: u32,
    next_seq: u32,
    buf: Vec<u8>,
}

/// Room for one ack per message of the largest batch: every ack is its own
/// skb, about 1 KiB of receive buffer each.
const RCVBUF: usize = 4 << 20;

impl Socket {
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        let portid = getsockname::<NetlinkAddr>(fd.as_raw_fd())?.pid();
        // Acks without a copy of the request; a big receive buffer (netexec
        // has CAP_NET_ADMIN to force it) so no ack of a batch is dropped.
        let one: libc::c_int = 1;
        // SAFETY: fd is an open socket; the option value is a valid c_int
        // that outlives the call, its size passed exactly.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
            setsockopt(&fd, sockopt::RcvBuf, &RCVBUF)?;
        }
        Ok(Socket { fd, portid, next_seq: 1, buf: vec![0; 1 << 16] })
    }

    /// The kernel's id for this socket: NEWGEN events of our own commits
    /// carry it.
    pub fn portid(&self) -> u32 {
        self.portid
    }

    pub fn batch(&self) -> Batch {
        Batch::new(self.next_seq)
    }

    /// Sends one batch and reads its answer. The kernel processes the whole
    /// batch inside `sendmsg`, so every ack is queued when it returns.
    pub fn commit(&mut self, batch: Batch) -> io::Result<Outcome> {
        let first = self.next_seq;
        let expected = batch.messages();
        let (bytes, next) = batch.finish();
        self.next_seq = next;
        sendto(self.fd.as_raw_fd(), &bytes, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
        let mut seen = 0;
        let mut refused = Vec::new();
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            };
            for (seq, errno) in acks(self.buf.get(..n).unwrap_or_default()) {
                // Late acks of an earlier batch are not this one's.
                if seq.wrapping_sub(first) >= next.wrapping_sub(first) {
                    continue;
                }
                seen += 1;
                if errno != 0 {
                    refused.push((seq, errno));
                }
            }
        }
        if !refused.is_empty() {
            return Ok(Outcome::Refused(refused));
        }
        if seen < expected {
            return Err(io::Error::other(format!(
                "nf_tables answered {seen} of {expected} messages"
            )));
        }
        Ok(Outcome::Committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Addr6Prefix, AddrPrefix};

    #[test]
    fn concatenated_parts_take_whole_registers() {
        let key = [Part::Proto(super::super::Proto::Tcp), Part::Port(18080)];
        assert_eq!(value(&key), [6, 0, 0, 0, 0x46, 0xa0, 0, 0]);
        let guard = [
            Part::Name("ct-a".into()),
            Part::Mac([2, 0x42, 0, 0, 0, 1]),
            Part::Ip("198.19.0.5".parse().unwrap()),
        ];
        assert_eq!(value(&guard).len(), 16 + 8 + 4);
        // Alone, a name is the kernel's IFNAMSIZ.
        assert_eq!(value(&[Part::Name("ctnet0".into())]).len(), 16);
    }

    #[test]
    fn an_interval_ends_at_the_first_address_after_it() {
        let net = |s: &str| [Part::Net(AddrPrefix::parse_subnet("s", s).unwrap())];
        assert_eq!(interval_end(&net("198.18.0.0/16")), Some(vec![198, 19, 0, 0]));
        let net6 = |s: &str| [Part::Net6(Addr6Prefix::parse_subnet_opt("s", s).unwrap().unwrap())];
        let end: std::net::Ipv6Addr = "2001:db8:3:1::".parse().unwrap();
        assert_eq!(interval_end(&net6("2001:db8:3::/64")), Some(end.octets().to_vec()));
        let last = Addr6Prefix { addr: "fff0::".parse().unwrap(), prefix: 12 };
        assert_eq!(interval_end(&[Part::Net6(last)]), None);
        assert_eq!(interval_end(&net("240.0.0.0/4")), None);
        assert_eq!(interval_end(&[Part::Ip("198.18.0.1".parse().unwrap())]), None);
    }

    #[test]
    fn a_batch_is_begin_messages_end() {
        let e = Element {
            set: "guarded",
            key: vec![Part::Name("ct-x".into())],
            data: vec![],
            comment: Some("sb:1".into()),
        };
        let mut b = Batch::new(40);
        assert_eq!(b.add(&e), 41);
        assert_eq!(b.remove(&e), [42, 43]);
        assert_eq!(b.messages(), 3);
        let (bytes, next) = b.finish();
        assert_eq!(next, 45);
        let kinds: Vec<u16> = {
            let mut out = Vec::new();
            let mut at = 0;
            while let Some(len) = ne_u32(&bytes, at) {
                out.push(ne_u16(&bytes, at + 4).unwrap());
                at += len as usize;
            }
            out
        };
        assert_eq!(kinds, [0x10, 0x0a0c, 0x0a0c, 0x0a0e, 0x11]);
        // The bridge table's family, the comment in nft's TLV form.
        assert_eq!(bytes[20 + 16], NFPROTO_BRIDGE);
        assert!(bytes.windows(7).any(|w| w == [0, 5, b's', b'b', b':', b'1', 0]));
    }

    #[test]
    fn acks_carry_sequence_and_errno() {
        let ack = |seq: u32, err: i32| {
            let mut b = vec![0u8; 36];
            b[0..4].copy_from_slice(&36u32.to_ne_bytes());
            b[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            b[8..12].copy_from_slice(&seq.to_ne_bytes());
            b[16..20].copy_from_slice(&err.to_ne_bytes());
            b
        };
        let both = [ack(3, 0), ack(4, -17)].concat();
        assert_eq!(acks(&both), [(3, 0), (4, 17)]);
        assert_eq!(acks(&both[..20]), []);
    }
}

#[cfg(test)]
mod kernel {
    //! Against the real kernel, in a scratch network namespace per test
    //! (root, like the golden check): what the netlink path leaves in the
    //! table must read back exactly as what `nft -f` leaves.
    use super::*;
    use crate::firewall::element::{self, of_port};
    use crate::firewall::fixtures::{listing, nft, port, sample, scratch};
    use crate::firewall::{render, FwState, Proto};

    /// The ruleset after `state`'s elements were added by text, and by us.
    fn both_ways(state: FwState) -> (String, String) {
        let by_text = {
            let state = state.clone();
            scratch(move || {
                nft(&render::table(&FwState::default()));
                nft(&render::delta(&crate::firewall::Delta {
                    add_networks: state.networks,
                    add_ports: state.ports,
                    add_guards: state.guards,
                    ..Default::default()
                }));
                listing()
            })
        };
        let by_netlink = scratch(move || {
            nft(&render::table(&FwState::default()));
            let mut s = Socket::open().unwrap();
            let mut b = s.batch();
            for e in element::of_state(&state) {
                b.add(&e);
            }
            assert_eq!(s.commit(b).unwrap(), Outcome::Committed);
            listing()
        });
        (by_text, by_netlink)
    }

    #[test]
    fn netlink_adds_read_back_as_nft_text_adds() {
        let (by_text, by_netlink) = both_ways(sample());
        assert!(by_text.contains("198.18.0.0/16"), "the control has the elements: {by_text}");
        assert_eq!(by_netlink, by_text);
    }

    #[test]
    fn removals_leave_the_empty_table_and_tolerate_absent_elements() {
        let (empty, after) = scratch(|| {
            nft(&render::table(&FwState::default()));
            let empty = listing();
            let mut s = Socket::open().unwrap();
            let all = element::of_state(&sample());
            let mut b = s.batch();
            for e in &all {
                b.add(e);
            }
            assert_eq!(s.commit(b).unwrap(), Outcome::Committed);
            assert_ne!(listing(), empty, "the elements went in");
            // Twice: the second time nothing is there to remove.
            for _ in 0..2 {
                let mut b = s.batch();
                for e in &all {
                    b.remove(e);
                }
                assert_eq!(s.commit(b).unwrap(), Outcome::Committed);
            }
            (empty, listing())
        });
        assert_eq!(after, empty);
    }

    #[test]
    fn a_conflicting_element_aborts_the_whole_batch_and_is_named() {
        let (refused, listed) = scratch(|| {
            nft(&render::table(&FwState::default()));
            let mut s = Socket::open().unwrap();
            let first = of_port(&port(Proto::Tcp, None, 8080, "198.18.0.2", 80));
            let mut b = s.batch();
            b.add(&first);
            assert_eq!(s.commit(b).unwrap(), Outcome::Committed);
            let mut b = s.batch();
            b.add(&of_port(&port(Proto::Tcp, None, 8081, "198.18.0.2", 81)));
            let bad = b.add(&of_port(&port(Proto::Tcp, None, 8080, "198.18.0.9", 80)));
            b.add(&of_port(&port(Proto::Tcp, None, 8082, "198.18.0.2", 82)));
            let outcome = s.commit(b).unwrap();
            (outcome == Outcome::Refused(vec![(bad, libc::EEXIST)]), listing())
        });
        assert!(refused, "only the conflicting message is refused");
        assert!(listed.contains("8080") && !listed.contains("8081") && !listed.contains("8082"));
    }
}
