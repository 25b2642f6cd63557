//! The kinds of home connection the lab builds, and the nftables ruleset of each router.
//!
//! Terms from RFC 4787 (NAT behavioural requirements for unicast UDP, which apply to TCP as
//! RFC 5382 restates): *mapping* says whether the router reuses one public port for every
//! destination of an inside socket (endpoint-independent, EIM) or picks a new one per
//! destination (address/port-dependent, "symmetric"); *filtering* says which outside
//! endpoints may send to a mapped port.
//!
//! | kind         | mapping                          | filtering                         | nft                                   |
//! |--------------|----------------------------------|-----------------------------------|---------------------------------------|
//! | `public`     | none (no router)                 | none                              | —                                     |
//! | `fullcone`   | endpoint-independent, port kept  | endpoint-independent (forwarded)  | `masquerade` + `dnat` of peer ports   |
//! | `restricted` | endpoint-independent, port kept  | address-and-port-dependent        | `masquerade`, inbound new dropped     |
//! | `symmetric`  | address-and-port-dependent       | address-and-port-dependent        | `masquerade fully-random`, dropped    |
//!
//! Unsolicited inbound packets are *dropped*, never answered with a TCP RST: real home
//! routers drop them, and an RST would kill a simultaneous open whose other SYN is still on
//! its way. `fullcone` stands for a router with port forwarding (or UPnP/PCP) for the peer
//! port range: inbound TCP to those ports is forwarded to the host, from anyone.

use std::fmt;
use std::net::Ipv4Addr;

/// Peers in the lab listen on ports in this range (alice, bob, … take consecutive ports);
/// a `fullcone` router forwards the whole range to its host.
pub const PEER_PORTS: std::ops::RangeInclusive<u16> = 40_000..=40_999;

/// How a home is connected to the public network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// No router: the host has a public address.
    Public,
    /// EIM with endpoint-independent filtering (port forwarding of the peer ports).
    FullCone,
    /// EIM with address-and-port-dependent filtering: the common home router.
    Restricted,
    /// Address-and-port-dependent mapping (a new random port per connection).
    Symmetric,
}

impl NatKind {
    /// Every kind, in the order the matrix lists them.
    pub const ALL: [NatKind; 4] = [
        NatKind::Public,
        NatKind::FullCone,
        NatKind::Restricted,
        NatKind::Symmetric,
    ];
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatKind::Public => "public",
            NatKind::FullCone => "fullcone",
            NatKind::Restricted => "restricted",
            NatKind::Symmetric => "symmetric",
        })
    }
}

impl std::str::FromStr for NatKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NatKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| format!("unknown NAT kind {s:?} (public|fullcone|restricted|symmetric)"))
    }
}

/// Interface names inside a router namespace.
pub const WAN_IF: &str = "wan";
/// The router's LAN bridge (holds the LAN gateway address).
pub const LAN_IF: &str = "lan";

/// The nftables ruleset of a router of `kind` (not `Public`) whose LAN hosts are `hosts`.
pub fn ruleset(kind: NatKind, hosts: &[Ipv4Addr]) -> String {
    let masquerade = match kind {
        NatKind::Symmetric => "masquerade fully-random",
        _ => "masquerade",
    };
    let (first, last) = (PEER_PORTS.start(), PEER_PORTS.end());
    let (forward_in, forward_accept) = match (kind, hosts.first()) {
        (NatKind::FullCone, Some(h)) => (
            format!("iifname \"{WAN_IF}\" tcp dport {first}-{last} dnat ip to {h}"),
            "iifname \"wan\" ct status dnat accept".to_owned(),
        ),
        _ => (String::new(), String::new()),
    };
    format!(
        "table ip nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    {forward_in}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{WAN_IF}\" {masquerade}
  }}
}}
table inet filter {{
  chain input {{
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname {{ \"lo\", \"{LAN_IF}\" }} accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname \"{LAN_IF}\" accept
    {forward_accept}
  }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fullcone_forwards_and_only_symmetric_randomises() {
        let h = [Ipv4Addr::new(10, 0, 1, 2)];
        assert!(ruleset(NatKind::FullCone, &h).contains("dnat ip to 10.0.1.2"));
        assert!(!ruleset(NatKind::Restricted, &h).contains("dnat"));
        assert!(ruleset(NatKind::Symmetric, &h).contains("fully-random"));
        assert!(!ruleset(NatKind::Restricted, &h).contains("random"));
    }
}
