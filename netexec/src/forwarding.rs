//! IPv6 forwarding, which is host-wide. Switching it on makes the kernel
//! ignore router advertisements on every interface whose accept_ra is 1,
//! so a host that learned its default route from one would lose it when
//! the route expires. Those interfaces are moved to accept_ra=2 (accept
//! even while forwarding) first, logged; if that cannot be done, the
//! network is refused with the reason.
use rtnetlink::packet_route::route::{RouteAttribute, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

use futures_util::TryStreamExt;

use crate::error::{ExecError, Result};

const ALL: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

fn conf(ifname: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{ifname}/{key}")
}

fn read(path: &str) -> Result<String> {
    let v = std::fs::read_to_string(path).map_err(|e| ExecError::step("read IPv6 sysctl", e))?;
    Ok(v.trim().to_string())
}

pub async fn enable_ipv6(handle: &Handle) -> Result<()> {
    if read(ALL)? == "1" {
        return Ok(());
    }
    for ifname in ra_default_route_interfaces(handle).await? {
        let accept_ra = conf(&ifname, "accept_ra");
        if read(&accept_ra)? != "1" {
            continue;
        }
        std::fs::write(&accept_ra, "2").map_err(|e| {
            ExecError::FailedPrecondition(format!(
                "IPv6 forwarding would drop {ifname}'s default route learned from router advertisements, and its accept_ra cannot be set to 2: {e}"
            ))
        })?;
        tracing::warn!(interface = %ifname,
            "accept_ra set to 2: the default route it learned from router advertisements survives IPv6 forwarding");
    }
    std::fs::write(ALL, "1").map_err(|e| ExecError::step("enable IPv6 forwarding", e))?;
    tracing::info!("IPv6 forwarding on");
    Ok(())
}

/// Names of the interfaces that hold an IPv6 default route a router
/// advertisement installed (protocol "ra").
async fn ra_default_route_interfaces(handle: &Handle) -> Result<Vec<String>> {
    let routes: Vec<_> = handle
        .route()
        .get(RouteMessageBuilder::<std::net::Ipv6Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| ExecError::step("dump IPv6 routes", e))?;
    let learned = |r: &&rtnetlink::packet_route::route::RouteMessage| {
        r.header.destination_prefix_length == 0 && r.header.protocol == RouteProtocol::Ra
    };
    let oifs: Vec<u32> = routes
        .iter()
        .filter(learned)
        .filter_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        })
        .collect();
    if oifs.is_empty() {
        return Ok(Vec::new());
    }
    let links = crate::kernel::all_links(handle).await?;
    let mut out: Vec<String> =
        links.into_iter().filter(|l| oifs.contains(&l.index)).map(|l| l.name).collect();
    out.sort();
    out.dedup();
    Ok(out)
}
