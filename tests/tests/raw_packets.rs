//! SCTP through a published port, and the 127.0.0.1 guard, with raw packets.
use std::net::Ipv4Addr;
use std::time::Duration;

use ctnet_tests::net::{self, UdpEcho};
use ctnet_tests::raw::{self, SctpSeen};
use ctnet_tests::{ip_of, req, Stack, EXTERNAL, HOST_OUTSIDE};

#[tokio::test]
async fn sctp_init_reaches_the_sandbox_with_its_destination_rewritten() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    let r = req::published("sctp", &[], &["9999:7777/sctp"]);
    let s = st.create(r).await;
    let seen = raw::receive_sctp(&Stack::pin_of(&s), Duration::from_secs(5));
    for _ in 0..5 {
        raw::send_sctp(&ext.pin, HOST_OUTSIDE, raw::sctp_init(5000, 9999));
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = seen.join().unwrap();
    let want = SctpSeen { src: EXTERNAL, dst: ip_of(&s, "eth0"), src_port: 5000, dst_port: 7777 };
    assert_eq!(
        seen.first(),
        Some(&want),
        "the INIT arrives DNAT'ed to the sandbox's address and port"
    );
    st.delete("sctp").await;
    st.finish().await;
}

#[tokio::test]
async fn a_crafted_packet_for_127_0_0_1_from_outside_is_dropped() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    let r = req::published("guarded", &[], &["127.0.0.1:8083:53/udp"]);
    let s = st.create(r).await;
    let host_mac = raw::mac(net::link(&st.host, "ext0").unwrap()["address"].as_str().unwrap());
    let ext_mac = raw::mac(net::link(&ext.pin, "eth0").unwrap()["address"].as_str().unwrap());
    let frame =
        raw::udp_frame(host_mac, ext_mac, EXTERNAL, Ipv4Addr::LOCALHOST, 40001, 8083, b"forged");
    let send = |n: usize| {
        for _ in 0..n {
            raw::send_frame(&ext.pin, "eth0", frame.clone());
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // With ctnet's guard in place the frame never reaches the sandbox.
    let listener = UdpEcho::start(&Stack::pin_of(&s), Ipv4Addr::UNSPECIFIED, 53, 1, 2);
    send(5);
    assert!(listener.peers().is_empty(), "a forged 127.0.0.1 packet got through");

    // Control: without the guard rule the same frame is DNAT'ed through
    // (moby#45610), so the guard is what stops it. netexec is stopped first:
    // it would repair the flushed chain within milliseconds (drift repair).
    st.kill_netexec();
    st.flush_chain("inet", "raw_prerouting");
    let listener = UdpEcho::start(&Stack::pin_of(&s), Ipv4Addr::UNSPECIFIED, 53, 1, 5);
    send(10);
    assert_eq!(listener.peers().len(), 1, "control: without the guard the packet arrives");
    st.start_netexec();
    st.kill_api();
    st.start_api().await;
    st.delete("guarded").await;
    st.finish().await;
}
