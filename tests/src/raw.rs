//! Raw packets for what ordinary sockets cannot send: SCTP (this kernel has
//! no SCTP sockets, but raw IPPROTO_SCTP works) and Ethernet frames with a
//! forged destination.
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::netns::run_in;

/// CRC-32C (Castagnoli), as SCTP's checksum uses it.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// An SCTP packet holding one INIT chunk, with a valid checksum (stored
/// little-endian, as the kernel computes it).
pub fn sctp_init(src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend(src_port.to_be_bytes());
    p.extend(dst_port.to_be_bytes());
    p.extend(0u32.to_be_bytes()); // verification tag: 0 in an INIT
    p.extend(0u32.to_be_bytes()); // checksum, filled below
    p.extend([1u8, 0]); // chunk type INIT, flags
    p.extend(20u16.to_be_bytes()); // chunk length
    p.extend(0x1234_5678u32.to_be_bytes()); // initiate tag
    p.extend(65535u32.to_be_bytes()); // a_rwnd
    p.extend(1u16.to_be_bytes()); // outbound streams
    p.extend(1u16.to_be_bytes()); // inbound streams
    p.extend(1u32.to_be_bytes()); // initial TSN
    let sum = crc32c(&p);
    p[8..12].copy_from_slice(&sum.to_le_bytes());
    p
}

fn raw_socket(domain: i32, kind: i32, proto: i32) -> i32 {
    // SAFETY: plain syscall; the fd is closed by the caller.
    let fd = unsafe { libc::socket(domain, kind, proto) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    fd
}

/// On this thread: enters the namespace `ns` opens and makes a raw socket
/// there whose receives time out after `usec` microseconds.
fn receiver_in(ns: &std::fs::File, domain: i32, proto: i32, usec: i64) -> i32 {
    nix::sched::setns(std::os::fd::AsFd::as_fd(ns), nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("setns");
    let fd = raw_socket(domain, libc::SOCK_RAW, proto);
    let tv = libc::timeval { tv_sec: 0, tv_usec: usec };
    // SAFETY: valid option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of_val(&tv) as u32,
        )
    };
    fd
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(addr).to_be() },
        sin_zero: [0; 8],
    }
}

/// Sends an SCTP packet from inside `ns` to `dst`.
pub fn send_sctp(ns: &Path, dst: Ipv4Addr, packet: Vec<u8>) {
    run_in(ns, move || {
        let fd = raw_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_SCTP);
        let sa = sockaddr_in(dst);
        // SAFETY: valid buffer and address for the duration of the call.
        let n = unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                size_of_val(&sa) as u32,
            )
        };
        // SAFETY: fd is a socket this function opened and no longer uses.
        unsafe { libc::close(fd) };
        assert_eq!(n, packet.len() as isize, "sendto: {}", std::io::Error::last_os_error());
    });
}

/// An SCTP packet as received by a raw socket: IP addresses and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctpSeen {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Starts a raw IPPROTO_SCTP receiver inside `ns`; returns what it saw
/// within `wait`.
pub fn receive_sctp(ns: &Path, wait: Duration) -> std::thread::JoinHandle<Vec<SctpSeen>> {
    let file = std::fs::File::open(ns).expect("open netns");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let fd = receiver_in(&file, libc::AF_INET, libc::IPPROTO_SCTP, 200_000);
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline && seen.is_empty() {
            // SAFETY: valid buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 24 {
                continue;
            }
            let ihl = ((buf[0] & 0x0f) as usize) * 4;
            let ip = |o: usize| Ipv4Addr::new(buf[o], buf[o + 1], buf[o + 2], buf[o + 3]);
            let port = |o: usize| u16::from_be_bytes([buf[o], buf[o + 1]]);
            seen.push(SctpSeen {
                src: ip(12),
                dst: ip(16),
                src_port: port(ihl),
                dst_port: port(ihl + 2),
            });
        }
        // SAFETY: fd is a socket this function opened and no longer uses.
        unsafe { libc::close(fd) };
        seen
    });
    ready_rx.recv().unwrap();
    h
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying a UDP datagram with any destination address,
/// even one that no router would forward (127.0.0.1).
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(dst_mac);
    f.extend(src_mac);
    f.extend(0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend(total.to_be_bytes());
    ip.extend([0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend(src.octets());
    ip.extend(dst.octets());
    let sum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend(sport.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend(((8 + payload.len()) as u16).to_be_bytes());
    f.extend(0u16.to_be_bytes()); // no UDP checksum (allowed over IPv4)
    f.extend(payload);
    f
}

/// Sends a raw frame out of `ifname` inside `ns`.
pub fn send_frame(ns: &Path, ifname: &str, frame: Vec<u8>) {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    run_in(ns, move || {
        let fd = raw_socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        // SAFETY: valid C string; zeroed sockaddr_ll is a valid start.
        let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        assert!(index > 0, "no interface {ifname:?}");
        // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: valid buffer and address for the duration of the call.
        let n = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of_val(&sll) as u32,
            )
        };
        // SAFETY: fd is a socket this function opened and no longer uses.
        unsafe { libc::close(fd) };
        assert_eq!(n, frame.len() as isize, "send frame: {}", std::io::Error::last_os_error());
    });
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// Captures the IPv6 multicast frames (destination 33:33:...) arriving in
/// `ns` until `stop` is set; returns each as "DST-MAC next-header [icmpv6
/// type]", for a failure message that says what flooded.
pub fn ipv6_multicast_seen(
    ns: &Path,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    let file = std::fs::File::open(ns).expect("open netns");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let proto = (libc::ETH_P_IPV6 as u16).to_be() as i32;
        let fd = receiver_in(&file, libc::AF_PACKET, proto, 100_000);
        ready_tx.send(()).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = size_of_val(&from) as u32;
            // SAFETY: valid buffer and address storage.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            // Only what arrives, not what this namespace sends.
            if n < 54 || from.sll_pkttype == libc::PACKET_OUTGOING || buf[..2] != [0x33, 0x33] {
                continue;
            }
            let next = buf[20];
            let icmp = if next == 58 { format!(" icmpv6 {}", buf[54]) } else { String::new() };
            let mac = |m: &[u8]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            let src = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&buf[22..38]).unwrap());
            seen.push(format!(
                "{} next-header {next}{icmp} from {} {src}",
                mac(&buf[..6]),
                mac(&buf[6..12])
            ));
        }
        // SAFETY: fd is a socket this function opened and no longer uses.
        unsafe { libc::close(fd) };
        seen
    });
    ready_rx.recv().unwrap();
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
