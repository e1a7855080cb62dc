//! netexec's service run in process through `ctnet_netexec::run`, on a
//! runtime this test builds inside its own fake host namespace. It runs
//! unconfined (no capability drop, no seccomp filter): confinement is tested
//! through the binary (privilege.rs). The executor contract runs against it
//! over a real socket, as it runs against the fake and the binary.
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use ctnet_api::contract::{self, Fixture};
use ctnet_api::executor::GrpcExecutor;
use ctnet_netexec::firewall::{nft::NftFirewall, Firewall};
use ctnet_netexec::netns::{make_shared_dir, PinDir};
use ctnet_netexec::{kernel, service, Settings};
use ctnet_tests::netns;

#[test]
fn the_contract_holds_for_netexec_run_in_process() {
    let dir = std::env::temp_dir().join(format!("ctnet-inproc-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let host = dir.join("host.ns");
    netns::create_pinned(&host, || {});
    let pins_dir = dir.join("netns");
    make_shared_dir(&pins_dir).expect("shared pin directory");
    let (sock, pins) = (dir.join("netexec.sock"), pins_dir.clone());
    let host_file = std::fs::File::open(&host).unwrap();
    // The runtime's thread lives in the fake host: the netlink socket, the
    // nft children and the namespace threads netexec spawns inherit it.
    let served = std::thread::spawn(move || {
        nix::sched::setns(host_file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(serve_and_check(sock, pins))
    })
    .join();
    let _ = nix::mount::umount2(&pins_dir, nix::mount::MntFlags::MNT_DETACH);
    netns::unpin(&host);
    let _ = std::fs::remove_dir_all(&dir);
    served.expect("the in-process run panicked");
}

async fn serve_and_check(sock: PathBuf, pins: PathBuf) {
    let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
    let nl = kernel::Netlink::open().unwrap();
    let fw = Arc::new(NftFirewall::new("nft".into(), "conntrack".into()).unwrap());
    fw.ensure_table().await.expect("nft table");
    let config = service::Config {
        prefix: "ct".into(),
        pins: Some(Arc::new(PinDir::open(&pins).unwrap())),
        host_ns: (own.dev(), own.ino()),
        allowed_dirs: Vec::new(),
    };
    let settings = Settings { config, allow_uid: vec![0] };
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ctnet_netexec::run(listener, nl, fw, settings, async {
        let _ = stopped.await;
    }));
    let x = GrpcExecutor::new(&sock).unwrap();
    contract::all(&x, &Fixture::new("ct", 72)).await;
    let _ = stop.send(());
    server.await.unwrap().expect("netexec served until told to stop");
}
