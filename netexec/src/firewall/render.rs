//! nftables text for the ctnet table. Pure functions: the same state always
//! renders the same text, which the golden files pin down.
//!
//! The table's shape never changes at run time; only set and map elements
//! do. A published port is one map element, so adding the 10,000th costs
//! what the first did and a new flow does one hash lookup.
use std::fmt::Write;

use super::element::{self, Element};
use super::{Delta, FwState};

pub const TABLE: &str = "inet ctnet";
/// Anti-spoofing. Frames bridged between two ports of one bridge never
/// meet the inet hooks (no br_netfilter), so the guard is a bridge-family
/// table: a guarded port accepts IPv4 and ARP from its own sandbox's MAC
/// and address only, and nothing else.
pub const GUARD_TABLE: &str = "bridge ctnet";

/// Every table, each with its chains.
pub const TABLES: [(&str, &str); 2] = [(TABLE, CHAINS), (GUARD_TABLE, GUARD_CHAINS)];

const GUARD_CHAINS: &str = r#"	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		iifname @guarded jump guard
	}

	chain guard {
		ether type ip iifname . ether saddr . ip saddr @guards accept
		ether type ip6 iifname . ether saddr . ip6 saddr @guards6 accept
		ether type arp iifname . ether saddr . arp saddr ip @guards iifname . arp saddr ether . arp saddr ip @guards accept
		drop
	}
"#;

/// Chains and rules. Sets referenced here are declared by `sets`.
///
/// The first forward rule drops the MLD reports sandboxes send, as the
/// bridge forwards them between its ports (br_netfilter passes bridged
/// IPv6 through this hook): ctnet bridges have no multicast querier, so
/// each report would be flooded to every sandbox (several per new one, a
/// create cost that grows with the bridge), and nothing on them routes
/// multicast. MLD is link-local, never routed: nothing else is dropped.
const CHAINS: &str = r#"	chain raw_prerouting {
		type filter hook prerouting priority -300; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop
	}

	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		fib daddr type local jump published
	}

	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump published
	}

	chain published {
		dnat ip to ip daddr . meta l4proto . th dport map @ports_addr
		dnat ip to meta l4proto . th dport map @ports_any
		dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_addr6
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports_any6
	}

	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr @masq_subnets oifname != @bridges masquerade
		ct status dnat oifname @bridges ip saddr @masq_subnets masquerade
		ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade
		ip6 saddr @masq_subnets6 oifname != @bridges masquerade
		ct status dnat oifname @bridges ip6 saddr @masq_subnets6 masquerade
	}

	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname @bridges icmpv6 type { mld-listener-report, mld-listener-reduction, mld2-listener-report } drop
		ct state established,related accept
		ct status dnat accept
		icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
		iifname . oifname @no_icc drop
		iifname @bridges oifname @bridges iifname . oifname != @same_bridge drop
		iifname @internal iifname . oifname != @same_bridge drop
		oifname @internal iifname . oifname != @same_bridge drop
		meta nfproto ipv4 iifname @isolated4 iifname . oifname != @same_bridge drop
		meta nfproto ipv4 oifname @isolated4 iifname . oifname != @same_bridge drop
		meta nfproto ipv6 iifname @isolated6 iifname . oifname != @same_bridge drop
		meta nfproto ipv6 oifname @isolated6 iifname . oifname != @same_bridge drop
		oifname @routed4 iifname != @bridges ip daddr . meta l4proto . th dport @routed_open accept
		meta nfproto ipv4 oifname @routed4 iifname != @bridges drop
		oifname @routed6 iifname != @bridges ip6 daddr . meta l4proto . th dport @routed_open6 accept
		meta nfproto ipv6 oifname @routed6 iifname != @bridges drop
	}
"#;

/// (table, name, declaration) of every set and map.
const SETS: [(&str, &str, &str); 19] = [
    (TABLE, "bridges", "type ifname"),
    (TABLE, "same_bridge", "type ifname . ifname"),
    (TABLE, "no_icc", "type ifname . ifname"),
    (TABLE, "internal", "type ifname"),
    (TABLE, "masq_subnets", "type ipv4_addr\n\t\tflags interval"),
    (TABLE, "ports_any", "type inet_proto . inet_service : ipv4_addr . inet_service"),
    (TABLE, "ports_addr", "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"),
    (TABLE, "masq_subnets6", "type ipv6_addr\n\t\tflags interval"),
    (TABLE, "ports_any6", "type inet_proto . inet_service : ipv6_addr . inet_service"),
    (TABLE, "ports_addr6", "type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service"),
    // Gateway modes per family: routed bridges and the container ports
    // opened on them, isolated bridges.
    (TABLE, "routed4", "type ifname"),
    (TABLE, "routed6", "type ifname"),
    (TABLE, "routed_open", "type ipv4_addr . inet_proto . inet_service"),
    (TABLE, "routed_open6", "type ipv6_addr . inet_proto . inet_service"),
    (TABLE, "isolated4", "type ifname"),
    (TABLE, "isolated6", "type ifname"),
    (GUARD_TABLE, "guarded", "type ifname"),
    (GUARD_TABLE, "guards", "type ifname . ether_addr . ipv4_addr"),
    (GUARD_TABLE, "guards6", "type ifname . ether_addr . ipv6_addr"),
];

pub fn table_of(set: &str) -> &'static str {
    SETS.iter().find(|(_, name, _)| *name == set).map_or(TABLE, |(table, _, _)| table)
}

/// Every table, replacing any previous one in the same transaction
/// (`add` makes the `delete` safe when no table exists yet).
pub fn full(state: &FwState) -> String {
    let mut out = String::new();
    for (name, _) in TABLES {
        let _ = writeln!(out, "add table {name}\ndelete table {name}");
    }
    out += &table(state);
    out
}

/// The table definitions alone, for tables that do not exist yet.
pub fn table(state: &FwState) -> String {
    TABLES.iter().map(|(name, _)| one_table(name, state)).collect::<Vec<_>>().join("\n")
}

/// One table with its sets and chains and `state`'s elements in them.
pub fn one_table(table: &str, state: &FwState) -> String {
    let elements = element::of_state(state);
    let mut out = format!("table {table} {{\n");
    for (_, name, decl) in SETS.iter().filter(|(t, _, _)| *t == table) {
        let kind = if decl.contains(" : ") { "map" } else { "set" };
        let _ = writeln!(out, "\t{kind} {name} {{\n\t\t{decl}");
        let mine: Vec<String> =
            elements.iter().filter(|e| e.set == *name).map(Element::text).collect();
        if !mine.is_empty() {
            let _ = writeln!(out, "\t\telements = {{\n\t\t\t{}\n\t\t}}", mine.join(",\n\t\t\t"));
        }
        out += "\t}\n\n";
    }
    out += TABLES.iter().find(|(t, _)| *t == table).map_or("", |(_, chains)| chains);
    out += "}\n";
    out
}

/// One transaction with exactly the delta's elements. A removal is written
/// as add-then-delete so that removing what is already gone succeeds (nft
/// 1.0.6 has no `destroy`); removals come first so a port can move.
pub fn delta(d: &Delta) -> String {
    let mut out = String::new();
    let removed = FwState {
        networks: d.remove_networks.clone(),
        ports: d.remove_ports.clone(),
        guards: d.remove_guards.clone(),
    };
    for e in element::of_state(&removed) {
        let (table, set) = (table_of(e.set), e.set);
        let _ = writeln!(out, "add element {table} {set} {{ {} }}", e.text());
        let _ = writeln!(out, "delete element {table} {set} {{ {} }}", e.key_text());
    }
    let added = FwState {
        networks: d.add_networks.clone(),
        ports: d.add_ports.clone(),
        guards: d.add_guards.clone(),
    };
    for e in element::of_state(&added) {
        let _ = writeln!(out, "add element {} {} {{ {} }}", table_of(e.set), e.set, e.text());
    }
    out
}

#[cfg(test)]
mod golden {
    //! The generated ruleset for a set of option combinations must match the
    //! files in netexec/tests/golden (CTNET_UPDATE_GOLDEN=1 rewrites them),
    //! and every file must pass `nft -c -f` in a scratch network namespace.
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;
    use crate::firewall::fixtures::{port, sample};
    use crate::firewall::Proto;

    fn cases() -> Vec<(&'static str, String)> {
        let state = sample();
        let n = state.networks.clone();
        let (default, no_icc, internal, dual) =
            (n[0].clone(), n[1].clone(), n[2].clone(), n[3].clone());
        let (ports, guards) = (state.ports.clone(), state.guards.clone());
        let add = Delta {
            add_ports: [&ports[..2], &ports[5..6], &ports[7..]].concat(),
            add_networks: vec![no_icc.clone(), dual, n[4].clone()],
            add_guards: guards.clone(),
            ..Default::default()
        };
        let remove = Delta {
            remove_ports: ports[3..].to_vec(),
            remove_networks: vec![internal],
            remove_guards: guards,
            ..Default::default()
        };
        vec![
            ("empty", full(&FwState::default())),
            ("default-network", full(&FwState { networks: vec![default], ..Default::default() })),
            ("networks-and-ports", full(&state)),
            // Deltas are checked on top of the table they apply to.
            ("delta-add", table(&FwState::default()) + &delta(&add)),
            ("delta-remove", table(&state) + &delta(&remove)),
        ]
    }

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    #[test]
    fn rulesets_match_golden_files() {
        let update = std::env::var_os("CTNET_UPDATE_GOLDEN").is_some();
        for (name, text) in cases() {
            let path = golden_dir().join(format!("{name}.nft"));
            if update {
                std::fs::write(&path, &text).unwrap();
            }
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(text, want, "{name}: rendered ruleset differs from {}", path.display());
        }
    }

    #[test]
    fn golden_files_pass_nft_check() {
        for (name, _) in cases() {
            let path = golden_dir().join(format!("{name}.nft"));
            // A scratch namespace: the check never sees the real host's tables.
            let out = Command::new("unshare")
                .args(["--net", "nft", "-c", "-f"])
                .arg(&path)
                .output()
                .expect("run unshare nft");
            assert!(
                out.status.success(),
                "{name}: nft -c: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn delta_names_only_its_own_elements() {
        let p = port(Proto::Tcp, None, 8080, "198.18.0.2", 80);
        let d = delta(&Delta { remove_ports: vec![p], ..Default::default() });
        assert_eq!(
            d,
            "add element inet ctnet ports_any { tcp . 8080 comment \"sb:00000000000000a1\" : 198.18.0.2 . 80 }\n\
             delete element inet ctnet ports_any { tcp . 8080 }\n"
        );
    }
}
