//! Links, addresses and routes, all over rtnetlink. Functions that take a
//! `Handle` work in whatever namespace that handle's socket was created in.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::MulticastGroup;
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder,
};

use crate::checks::{Addr6Prefix, AddrPrefix, OwnedLinkName, Owner, SandboxIfName, ALIAS_PREFIX};
use crate::error::{netlink_errno, ExecError, Result};

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;

fn nl_err(what: &str) -> impl Fn(rtnetlink::Error) -> ExecError + '_ {
    move |e| ExecError::step(what, e)
}

/// Receive buffer of our netlink sockets. Under many concurrent requests
/// the default (~200 KiB) overflowed, the kernel dropped replies (ENOBUFS)
/// and the requests waiting for them never completed.
const NETLINK_RCVBUF: libc::c_int = 8 << 20;

/// Unsolicited messages of a route netlink connection.
pub type Messages =
    futures_channel::mpsc::UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// A route netlink connection whose socket has a large receive buffer.
pub fn connection(
) -> std::io::Result<(rtnetlink::proto::Connection<RouteNetlinkMessage>, Handle, Messages)> {
    let (mut conn, handle, rx) = rtnetlink::new_connection()?;
    let fd = conn.socket_mut().socket_mut().as_raw_fd();
    // SO_RCVBUFFORCE (CAP_NET_ADMIN) is not capped by net.core.rmem_max.
    // SAFETY: setsockopt on a socket we own, with a valid int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&NETLINK_RCVBUF as *const libc::c_int).cast(),
            4,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((conn, handle, rx))
}

/// netexec's route netlink connections in the namespace it manages: `host`
/// for everything but link deletions, `deleter` for those. The kernel
/// answers a deletion only after an RCU grace period, blocking the thread
/// that sent it for tens of milliseconds; `deleter` is driven on an OS
/// thread of its own, so a deletion stalls neither a tokio worker nor the
/// requests queued behind it on the shared connection.
#[derive(Clone)]
pub struct Netlink {
    pub host: Handle,
    deleter: Handle,
}

impl Netlink {
    /// Opens both in the calling thread's network namespace (a new thread
    /// starts in its creator's); call inside a tokio runtime, which drives
    /// the `host` connection.
    pub fn open() -> std::io::Result<Self> {
        let (conn, host, _) = connection()?;
        tokio::spawn(conn);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("ctnet-nl-delete".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_io().build();
            let started = rt.and_then(|rt| {
                let conn = {
                    let _in = rt.enter();
                    connection()?
                };
                Ok((rt, conn))
            });
            match started {
                Ok((rt, (conn, handle, _))) => {
                    let _ = tx.send(Ok(handle));
                    rt.block_on(conn);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
        let deleter = rx.recv().map_err(std::io::Error::other)??;
        Ok(Self { host, deleter })
    }
}

/// A bridge as the executor creates it.
pub struct BridgeSpec {
    pub name: OwnedLinkName,
    /// None: the network's IPv4 is isolated (no gateway address).
    pub address: Option<AddrPrefix>,
    /// A dual-stack network's IPv6 gateway address (None also when its
    /// IPv6 is isolated).
    pub address6: Option<Addr6Prefix>,
    pub mtu: u32,
    pub owner: Owner,
    /// Adopt an untagged bridge of this name (reconciliation of a record).
    pub adopt_untagged: bool,
}

/// The link kinds netexec makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bridge,
    Veth,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Veth => "veth",
        }
    }
}

/// One veth endpoint: host end on a bridge, peer inside a sandbox.
pub struct EndpointSpec {
    pub host_ifname: OwnedLinkName,
    pub ifname: SandboxIfName,
    pub bridge: OwnedLinkName,
    /// None on an IPv6-only network (address6 is then set).
    pub address: Option<AddrPrefix>,
    pub gateway: Option<Ipv4Addr>,
    pub address6: Option<Addr6Prefix>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub owner: Owner,
    pub hairpin: bool,
    pub announce: bool,
}

/// What a link is, read back from the kernel.
pub struct LinkFacts {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
    pub master: Option<u32>,
}

impl LinkFacts {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut facts = LinkFacts {
            index: msg.header.index,
            name: String::new(),
            alias: None,
            kind: None,
            master: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => facts.name = n.clone(),
                LinkAttribute::IfAlias(a) => facts.alias = Some(a.clone()),
                LinkAttribute::Controller(m) => facts.master = Some(*m),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(k) = info {
                            facts.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        facts
    }

    /// The owner tag, if the link carries ours.
    pub fn owner(&self) -> Option<&str> {
        self.alias.as_deref().and_then(|a| a.strip_prefix(ALIAS_PREFIX))
    }
}

pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkFacts>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(LinkFacts::from_message(&msg))),
        Ok(None) => Ok(None),
        Err(e) if netlink_errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(ExecError::step(&format!("get link {name}"), e)),
    }
}

pub async fn all_links(handle: &Handle) -> Result<Vec<LinkFacts>> {
    let msgs: Vec<LinkMessage> =
        handle.link().get().execute().try_collect().await.map_err(nl_err("dump links"))?;
    Ok(msgs.iter().map(LinkFacts::from_message).collect())
}

/// An existing link may be reused, changed or deleted only when it is of the
/// kind the request expects and carries exactly the tag of the object the
/// request names. With `adopt_untagged`, a link of that kind with no alias
/// at all is accepted too: the kernel ignores an alias in a create request,
/// so a netexec killed between creating a link and tagging it leaves exactly
/// such a half-made link, under the exact name its record implies. A link
/// tagged for another object, or by anyone else, is left alone.
fn require_owner(link: &LinkFacts, kind: Kind, owner: &Owner, adopt_untagged: bool) -> Result<()> {
    let right_kind = link.kind.as_deref() == Some(kind.as_str());
    let exact = link.alias.as_deref() == Some(owner.alias().as_str());
    let half_made = adopt_untagged && link.alias.is_none();
    if right_kind && (exact || half_made) {
        return Ok(());
    }
    Err(ExecError::FailedPrecondition(format!(
        "link {} exists and is not this object's {}; choose another name, or rename or remove it",
        link.name,
        kind.as_str()
    )))
}

pub async fn ensure_bridge(handle: &Handle, spec: &BridgeSpec) -> Result<()> {
    let index = match link_by_name(handle, spec.name.as_str()).await? {
        Some(link) => {
            require_owner(&link, Kind::Bridge, &spec.owner, spec.adopt_untagged)?;
            if link.alias.is_none() {
                set_alias(handle, link.index, &spec.owner).await?;
            }
            link.index
        }
        None => create_bridge(handle, spec).await?,
    };
    if let Some(a) = spec.address {
        let addr = handle.address().add(index, IpAddr::V4(a.addr), a.prefix);
        ignore_exists(addr.execute().await).map_err(nl_err("add bridge address"))?;
    }
    if let Some(a6) = spec.address6 {
        crate::forwarding::enable_ipv6(handle).await?;
        // Its link-local address would otherwise be probed (a DAD
        // solicitation flooded to every port) when its first port comes up.
        let dad = format!("/proc/sys/net/ipv6/conf/{}/accept_dad", spec.name.as_str());
        std::fs::write(&dad, "0").map_err(|e| ExecError::step("set bridge accept_dad", e))?;
        add_address6(handle, index, a6).await.map_err(nl_err("add bridge IPv6 address"))?;
    }
    let up = LinkUnspec::new_with_index(index).mtu(spec.mtu).up().build();
    handle.link().set(up).execute().await.map_err(nl_err("set bridge up"))
}

/// An IPv6 address without duplicate address detection (IFA_F_NODAD):
/// usable at once, never tentative. The addresses are ctnet's own IPAM's,
/// unique on their bridge by construction.
async fn add_address6(
    handle: &Handle,
    index: u32,
    a: Addr6Prefix,
) -> std::result::Result<(), rtnetlink::Error> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
    let mut add = handle.address().add(index, IpAddr::V6(a.addr), a.prefix);
    let msg = add.message_mut();
    msg.header.flags = AddressHeaderFlags::Nodad;
    msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    ignore_exists(add.execute().await)
}

/// A bridge without an address of its own takes its lowest port's MAC,
/// which changes as sandboxes come and go: every change makes the
/// gateway's neighbours stale and, on a dual-stack bridge, sends IPv6
/// address probes and MLD reports to every port. So each bridge gets a
/// fixed, locally administered MAC derived from its name (as Docker sets
/// one on docker0).
fn bridge_mac(name: &str) -> Vec<u8> {
    let h = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let b = h.to_be_bytes();
    vec![0x06, b[0], b[1], b[2], b[3], b[4]]
}

async fn create_bridge(handle: &Handle, spec: &BridgeSpec) -> Result<u32> {
    let msg = LinkBridge::new(spec.name.as_str())
        .mtu(spec.mtu)
        .address(bridge_mac(spec.name.as_str()))
        .build();
    ignore_exists(handle.link().add(msg).execute().await).map_err(nl_err("create bridge"))?;
    let link = link_by_name(handle, spec.name.as_str()).await?.ok_or_else(|| {
        ExecError::Internal(format!("bridge {} vanished after creation", spec.name.as_str()))
    })?;
    set_alias(handle, link.index, &spec.owner).await?;
    Ok(link.index)
}

/// The kernel ignores IFLA_IFALIAS in a create request, so the tag is set
/// right after, by index.
async fn set_alias(handle: &Handle, index: u32, owner: &Owner) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index).alias(owner.alias()).build();
    handle.link().set(msg).execute().await.map_err(nl_err("set owner tag"))
}

fn ignore_exists(
    r: std::result::Result<(), rtnetlink::Error>,
) -> std::result::Result<(), rtnetlink::Error> {
    match r {
        Err(e) if netlink_errno(&e) == Some(EEXIST) => Ok(()),
        other => other,
    }
}

/// Deletes `owner`'s link of this name and kind; success if it is already
/// gone. A half-made veth (no alias) of the exact name is deleted too; a
/// bridge only with its tag (an untagged one may be an operator's).
pub async fn delete_owned_link(
    nl: &Netlink,
    name: &OwnedLinkName,
    kind: Kind,
    owner: &Owner,
) -> Result<()> {
    let Some(link) = link_by_name(&nl.host, name.as_str()).await? else {
        return Ok(());
    };
    require_owner(&link, kind, owner, kind == Kind::Veth)?;
    match nl.deleter.link().del(link.index).execute().await {
        Err(e) if netlink_errno(&e) == Some(ENODEV) => Ok(()),
        other => other.map_err(nl_err("delete link")),
    }
}

/// Takes `owner`'s veth off its bridge and down: one RTM_SETLINK, where a
/// delete waits for an RCU grace period. Gone already is fine.
pub async fn unplug(handle: &Handle, name: &OwnedLinkName, owner: &Owner) -> Result<()> {
    let Some(link) = link_by_name(handle, name.as_str()).await? else {
        return Ok(());
    };
    require_owner(&link, Kind::Veth, owner, true)?;
    let msg = LinkUnspec::new_with_index(link.index).down().nocontroller().build();
    match handle.link().set(msg).execute().await {
        Err(e) if netlink_errno(&e) == Some(ENODEV) => Ok(()),
        other => other.map_err(nl_err("unplug veth")),
    }
}

/// Gives `from`'s link of this name and kind the tag `to`.
pub async fn retag(
    handle: &Handle,
    name: &OwnedLinkName,
    kind: Kind,
    from: &Owner,
    to: &Owner,
) -> Result<()> {
    let Some(link) = link_by_name(handle, name.as_str()).await? else {
        return Err(ExecError::NotFound(format!("link {} does not exist", name.as_str())));
    };
    require_owner(&link, kind, from, false)?;
    set_alias(handle, link.index, to).await
}

/// Waits up to `grace` for a link to disappear on its own: one look, then
/// the kernel's RTM_DELLINK announcement. (Polling every few milliseconds
/// per waiter swamped the host connection once deletes were answered early
/// and many releases waited at once.) A missed event only costs the grace:
/// the caller then deletes the link itself.
pub async fn await_gone(
    handle: &Handle,
    name: &OwnedLinkName,
    grace: std::time::Duration,
) -> Result<()> {
    // Subscribed before looking, so a deletion in between is not missed.
    let mut events = link_events()?;
    if link_by_name(handle, name.as_str()).await?.is_none() {
        return Ok(());
    }
    let deleted = async {
        while let Some((msg, _)) = events.next().await {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) = msg.payload {
                let named =
                    |a: &LinkAttribute| matches!(a, LinkAttribute::IfName(n) if n == name.as_str());
                if l.attributes.iter().any(named) {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(grace, deleted).await;
    Ok(())
}

/// Creates the veth pair in one RTM_NEWLINK: the host end up on the bridge,
/// the peer born inside the sandbox namespace under its final name (no move,
/// no rename: a move waits for an RCU grace period). Returns false when the
/// host end already existed (a repeated call).
pub async fn create_veth(
    handle: &Handle,
    spec: &EndpointSpec,
    netns: &std::fs::File,
) -> Result<bool> {
    if let Some(link) = link_by_name(handle, spec.host_ifname.as_str()).await? {
        require_owner(&link, Kind::Veth, &spec.owner, true)?;
        if link.alias.is_none() {
            tag_port(handle, link.index, spec).await?;
        }
        return Ok(false);
    }
    let bridge = link_by_name(handle, spec.bridge.as_str()).await?.ok_or_else(|| {
        ExecError::NotFound(format!("bridge {} does not exist", spec.bridge.as_str()))
    })?;
    if bridge.kind.as_deref() != Some("bridge") || bridge.owner().is_none() {
        return Err(ExecError::FailedPrecondition(format!(
            "{} is not a bridge of ctnet's",
            spec.bridge.as_str()
        )));
    }
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.ifname.as_str().to_string())
        .address(spec.mac.to_vec())
        .mtu(spec.mtu)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    // Created down: IPv6 goes off before it comes up (see `tag_port`).
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(spec.host_ifname.as_str().to_string())
        .mtu(spec.mtu)
        .controller(bridge.index)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    handle.link().add(msg).execute().await.map_err(|e| match netlink_errno(&e) {
        Some(EEXIST) => ExecError::FailedPrecondition(format!(
            "interface {} or {} already exists in the namespace",
            spec.host_ifname.as_str(),
            spec.ifname.as_str()
        )),
        _ => ExecError::step("create veth", e),
    })?;
    let host = link_by_name(handle, spec.host_ifname.as_str())
        .await?
        .ok_or_else(|| ExecError::Internal("veth vanished after creation".into()))?;
    tag_port(handle, host.index, spec).await?;
    Ok(true)
}

/// The host end is a bridge port and needs no IPv6. Left on, each one adds
/// link-local and multicast routes to the host's IPv6 table, and every
/// interface going up or down walks that whole table (fib6_ifup/ifdown):
/// O(N) per create with N sandboxes. So IPv6 goes off first, then one
/// message tags the port, sets its bridge-port options and brings it up
/// (the kernel applies neither alias nor port options in a create request).
async fn tag_port(handle: &Handle, index: u32, spec: &EndpointSpec) -> Result<()> {
    let v6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", spec.host_ifname.as_str());
    match std::fs::write(&v6, "1") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(ExecError::step("disable IPv6 on host end", e))
        }
        _ => {}
    }
    let port =
        LinkBridgePort::new(index).hairpin(spec.hairpin).alias(spec.owner.alias()).up().build();
    handle.link().set_port(port).execute().await.map_err(nl_err("tag veth, set hairpin, up"))
}

/// What to configure on the sandbox side of an endpoint.
pub struct InsideSpec {
    pub ifname: SandboxIfName,
    pub address: Option<AddrPrefix>,
    pub gateway: Option<Ipv4Addr>,
    pub address6: Option<Addr6Prefix>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
    /// Send gratuitous ARP (see AttachEndpointRequest.announce).
    pub announce: bool,
}

/// Inside the sandbox: loopback up, the address, the link up, the MAC
/// announced, and the default route.
pub async fn configure_inside(handle: Handle, spec: InsideSpec) -> Result<()> {
    let InsideSpec { ifname, address, gateway, address6, gateway6, mac, announce: wanted } = spec;
    let mut events = if wanted { Some(link_events()?) } else { None };
    loopback_up(&handle).await?;
    let link = link_by_name(&handle, ifname.as_str()).await?.ok_or_else(|| {
        ExecError::Internal(format!("{} missing inside the namespace", ifname.as_str()))
    })?;
    // With arp_notify the kernel sends a gratuitous ARP on a MAC change, so
    // neighbours that cached a previous holder of this address learn the new
    // MAC at once (see `announce`).
    if wanted {
        let sysctl = format!("/proc/sys/net/ipv4/conf/{}/arp_notify", ifname.as_str());
        std::fs::write(&sysctl, "1").map_err(|e| ExecError::step("set arp_notify", e))?;
    }
    match address6 {
        Some(a6) => ipv6_inside(&handle, &ifname, link.index, a6).await?,
        None => ipv6_off(&ifname)?,
    }
    if let Some(a) = address {
        let add = handle.address().add(link.index, IpAddr::V4(a.addr), a.prefix);
        ignore_exists(add.execute().await).map_err(nl_err("add address"))?;
    }
    let up = LinkUnspec::new_with_index(link.index).up().build();
    handle.link().set(up).execute().await.map_err(nl_err("set link up"))?;
    if let Some(events) = events.as_mut() {
        announce(&handle, events, link.index, mac).await?;
    }
    if let Some(gw) = gateway {
        let route =
            RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(link.index).build();
        handle.route().add(route).replace().execute().await.map_err(nl_err("add default route"))?;
    }
    if let Some(gw) = gateway6 {
        let route =
            RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw).output_interface(link.index).build();
        let add = handle.route().add(route).replace().execute().await;
        add.map_err(nl_err("add IPv6 default route"))?;
    }
    Ok(())
}

/// On an IPv4-only network. Left on, every new interface sends router
/// solicitations, DAD probes and MLD reports that the bridge floods to
/// every port and every sandbox processes: O(N) work per create on a bridge
/// with N sandboxes. As Docker does, IPv6 is off on the interface before it
/// comes up.
fn ipv6_off(ifname: &SandboxIfName) -> Result<()> {
    let v6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ifname.as_str());
    match std::fs::write(&v6, "1") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ExecError::step("disable IPv6", e))
        }
        _ => Ok(()),
    }
}

/// On a dual-stack network, before the link comes up: no duplicate address
/// detection (the address is ctnet's IPAM's, unique on its bridge; DAD
/// would hold it tentative for about a second) and no router
/// advertisements taken or solicited (the routes are ctnet's), then the
/// address, added without DAD as well.
async fn ipv6_inside(
    handle: &Handle,
    ifname: &SandboxIfName,
    index: u32,
    a6: Addr6Prefix,
) -> Result<()> {
    for key in ["accept_dad", "accept_ra"] {
        let path = format!("/proc/sys/net/ipv6/conf/{}/{key}", ifname.as_str());
        std::fs::write(&path, "0").map_err(|e| ExecError::step(&format!("set {key}"), e))?;
    }
    add_address6(handle, index, a6).await.map_err(nl_err("add IPv6 address"))
}

/// The gratuitous ARP that arp_notify sends when the link comes up is lost:
/// the veth's carrier, and with it the qdisc, come up a moment later
/// (linkwatch). So once linkwatch has activated the link, the same MAC is
/// set again: a NETDEV_CHANGEADDR, whose gratuitous ARP does go out.
/// Polling operstate is not enough (it turns UP just before the qdisc is
/// attached); the RTM_NEWLINK linkwatch sends after activation is.
async fn announce(
    handle: &Handle,
    events: &mut LinkEvents,
    index: u32,
    mac: [u8; 6],
) -> Result<()> {
    let activated = async {
        while let Some((msg, _)) = events.next().await {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = msg.payload {
                let up = link
                    .attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
                if link.header.index == index && up {
                    return true;
                }
            }
        }
        false
    };
    match tokio::time::timeout(ANNOUNCE_WAIT, activated).await {
        Ok(true) => {
            let again = LinkUnspec::new_with_index(index).address(mac.to_vec()).build();
            handle.link().set(again).execute().await.map_err(nl_err("announce MAC"))
        }
        _ => {
            tracing::warn!(index, "link not activated in time; address not announced");
            Ok(())
        }
    }
}

const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

type LinkEvents =
    futures_channel::mpsc::UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// Subscribes to link notifications in the current thread's namespace.
fn link_events() -> Result<LinkEvents> {
    let (conn, _, events) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
        .map_err(|e| ExecError::step("netlink link events", e))?;
    tokio::spawn(conn);
    Ok(events)
}

pub async fn loopback_up(handle: &Handle) -> Result<()> {
    let lo = LinkUnspec::new_with_name("lo").up().build();
    handle.link().set(lo).execute().await.map_err(nl_err("set lo up"))
}

/// Every link, address and IPv4 route the handle's namespace has.
struct Dump {
    links: Vec<LinkMessage>,
    addrs: Vec<rtnetlink::packet_route::address::AddressMessage>,
    routes: Vec<rtnetlink::packet_route::route::RouteMessage>,
}

async fn dump(handle: &Handle) -> Result<Dump> {
    let links = handle.link().get().execute().try_collect().await.map_err(nl_err("dump links"))?;
    let addrs =
        handle.address().get().execute().try_collect().await.map_err(nl_err("dump addresses"))?;
    let mut routes: Vec<_> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("dump routes"))?;
    let routes6: Vec<_> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("dump IPv6 routes"))?;
    routes.extend(routes6);
    Ok(Dump { links, addrs, routes })
}

/// fe80::/10 and ff00::/8: per-interface, never a subnet of anyone's.
fn link_scoped(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 || v6.is_multicast())
}

impl Dump {
    /// "ADDRESS/len" of each address on the link `index`, IPv4 first, IPv6
    /// link-local left out.
    fn addresses(&self, index: u32) -> Vec<String> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let mut out: Vec<(bool, String)> = self
            .addrs
            .iter()
            .filter(|a| a.header.index == index)
            .filter_map(|a| {
                a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Address(ip) if !link_scoped(ip) => {
                        Some((ip.is_ipv6(), format!("{ip}/{}", a.header.prefix_len)))
                    }
                    _ => None,
                })
            })
            .collect();
        out.sort_by_key(|(v6, _)| *v6);
        out.into_iter().map(|(_, a)| a).collect()
    }

    fn link_name(&self, index: u32) -> String {
        self.links
            .iter()
            .map(LinkFacts::from_message)
            .find(|l| l.index == index)
            .map(|l| l.name)
            .unwrap_or_default()
    }
}

fn route_gateway(r: &rtnetlink::packet_route::route::RouteMessage) -> Option<IpAddr> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
        _ => None,
    })
}

fn route_destination(r: &rtnetlink::packet_route::route::RouteMessage) -> IpAddr {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    let dst = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(IpAddr::V4(*d)),
        RouteAttribute::Destination(RouteAddress::Inet6(d)) => Some(IpAddr::V6(*d)),
        _ => None,
    });
    let v6 = r.header.address_family == rtnetlink::packet_route::AddressFamily::Inet6;
    dst.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    })
}

/// The gateway of the namespace's default route of `v6`'s family.
fn default_gateway(seen: &Dump, v6: bool) -> String {
    seen.routes
        .iter()
        .filter(|r| r.header.destination_prefix_length == 0)
        .filter_map(route_gateway)
        .find(|g| g.is_ipv6() == v6)
        .map(|g| g.to_string())
        .unwrap_or_default()
}

/// The route's table: the header holds ids below 256, the attribute any.
fn route_table(r: &rtnetlink::packet_route::route::RouteMessage) -> u32 {
    use rtnetlink::packet_route::route::RouteAttribute;
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(r.header.table.into())
}

/// Interfaces (with IPv4 addresses and whether they are up) and the IPv4
/// default gateway, as seen from inside a namespace.
pub async fn inspect(handle: &Handle) -> Result<ctnet_proto::exec::InspectNetnsResponse> {
    use rtnetlink::packet_route::link::LinkFlags;
    let seen = dump(handle).await?;
    let interfaces = seen
        .links
        .iter()
        .map(|l| {
            let facts = LinkFacts::from_message(l);
            let addresses = seen.addresses(facts.index);
            let up = l.header.flags.contains(LinkFlags::Up);
            ctnet_proto::exec::NetnsInterface { name: facts.name, addresses, up }
        })
        .collect();
    Ok(ctnet_proto::exec::InspectNetnsResponse {
        interfaces,
        default_gateway: default_gateway(&seen, false),
        default_gateway6: default_gateway(&seen, true),
    })
}

const RT_TABLE_MAIN: u32 = 254;

/// The namespace's addresses and its main table's routes, both families
/// (IPv6 link-local and multicast left out).
pub async fn host_routes(handle: &Handle) -> Result<ctnet_proto::exec::HostRoutesResponse> {
    use ctnet_proto::exec::{HostAddress, HostRoute};
    use rtnetlink::packet_route::route::RouteAttribute;
    let seen = dump(handle).await?;
    let addresses = seen
        .links
        .iter()
        .map(LinkFacts::from_message)
        .flat_map(|l| {
            let interface = l.name.clone();
            seen.addresses(l.index)
                .into_iter()
                .map(move |address| HostAddress { interface: interface.clone(), address })
        })
        .collect();
    let routes = seen
        .routes
        .iter()
        .filter(|r| route_table(r) == RT_TABLE_MAIN && !link_scoped(&route_destination(r)))
        .map(|r| {
            let dst = route_destination(r);
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            HostRoute {
                destination: format!("{dst}/{}", r.header.destination_prefix_length),
                interface: oif.map(|i| seen.link_name(i)).unwrap_or_default(),
                gateway: route_gateway(r).map(|g| g.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(ctnet_proto::exec::HostRoutesResponse { addresses, routes })
}
