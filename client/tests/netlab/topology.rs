//! The lab's networks: one "public internet" namespace with a bridge, and homes attached to
//! it, each a router namespace (unless `public`) with one or two host namespaces behind it.
//!
//! Addresses (all inside lab namespaces only):
//! - public bridge `br0` in the internet namespace: 198.18.0.0/16 (RFC 2544 benchmark range);
//!   the server is 198.18.0.1 on the bridge itself;
//! - home `h` (h = 1, 2, …): WAN address 198.18.(1 + h / 250).(1 + h % 250) on the router, or
//!   on the host for `public`; LAN 10.(h / 250).(h % 250).0/24 with the router at .1 and the
//!   hosts at .2, .3.
//!
//! Every WAN link is a [`DelayLink`] (user-space delay; see that module for why not netem).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::delay::DelayLink;
use super::ns::Netns;
use super::router::{self, NatKind, LAN_IF, WAN_IF};

/// The server's address on the public bridge.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PUBLIC_PREFIX: u8 = 16;
const BRIDGE: &str = "br0";
/// The public bridge's (the server's) MAC address: locally administered, fixed.
pub const BRIDGE_MAC: &str = "02:00:c6:12:00:01";

/// The public network: a namespace with a bridge that every home's WAN link plugs into.
pub struct Internet {
    /// Prefix of every namespace name of this lab run (`pcnat<pid>-`).
    prefix: String,
    next_home: AtomicU32,
    ns: Netns,
}

impl Internet {
    /// Creates the public namespace `<prefix>pub` with bridge `br0` holding [`SERVER_IP`].
    pub fn create(prefix: &str) -> Internet {
        let ns = Netns::create(&format!("{prefix}pub"));
        // A fixed MAC address. A Linux bridge without one takes the lowest MAC of its ports
        // and changes it whenever a home's link joins or leaves; hosts then keep sending to
        // the server's old MAC (their ARP entry is still "reachable"), the bridge no longer
        // takes those frames for itself, and the host's server connection goes silent for
        // 15–30 s until its ARP entry is re-resolved. That was the "late pushes" of #11: a
        // lab artefact (a real server's MAC does not change when other hosts come and go).
        ns.ip(&format!(
            "link add {BRIDGE} address {BRIDGE_MAC} type bridge"
        ));
        ns.ip(&format!(
            "addr add {SERVER_IP}/{PUBLIC_PREFIX} dev {BRIDGE}"
        ));
        ns.ip(&format!("link set {BRIDGE} up"));
        // Bridged frames must not go through any netfilter hook here.
        ns.sysctl_if_present("net.bridge.bridge-nf-call-iptables", "0");
        Internet {
            prefix: prefix.to_owned(),
            next_home: AtomicU32::new(1),
            ns,
        }
    }

    /// The public bridge's MAC address as the kernel reports it now.
    pub fn bridge_mac(&self) -> String {
        let out = super::ns::run(self.ns.command("ip").args(["-br", "link", "show", BRIDGE]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned()
    }

    /// The prefix of every namespace name of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace holding the bridge (and the server).
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Builds a home of `kind` with `hosts` hosts (more than one needs a router) whose WAN
    /// link adds `delay` to every round trip.
    pub fn home(&self, kind: NatKind, hosts: usize, delay: Duration) -> Home {
        let h = self.next_home.fetch_add(1, Ordering::Relaxed);
        let wan_ip = Ipv4Addr::new(198, 18, (1 + h / 250) as u8, (1 + h % 250) as u8);
        let port = format!("h{h}");
        let ns_name = |what: &str| format!("{}h{h}{what}", self.prefix);
        if kind == NatKind::Public {
            assert_eq!(hosts, 1, "a public home has exactly one host");
            let ns = Netns::create(&ns_name("host0"));
            let link = DelayLink::new(&ns, WAN_IF, &self.ns, &port, delay);
            self.plug(&port);
            ns.ip(&format!("addr add {wan_ip}/{PUBLIC_PREFIX} dev {WAN_IF}"));
            ns.ip(&format!("link set {WAN_IF} up"));
            return Home {
                kind,
                wan: link,
                hosts: vec![Host { ns, ip: wan_ip }],
                router: None,
                wan_ip,
            };
        }
        let router = Netns::create(&ns_name("router"));
        let wan = DelayLink::new(&router, WAN_IF, &self.ns, &port, delay);
        self.plug(&port);
        router.ip(&format!("addr add {wan_ip}/{PUBLIC_PREFIX} dev {WAN_IF}"));
        router.ip(&format!("link set {WAN_IF} up"));
        let (a, b) = ((h / 250) as u8, (h % 250) as u8);
        let gateway = Ipv4Addr::new(10, a, b, 1);
        // Fixed for the same reason as the public bridge's (see Internet::create).
        router.ip(&format!(
            "link add {LAN_IF} address 02:00:0a:{a:02x}:{b:02x}:01 type bridge"
        ));
        router.ip(&format!("addr add {gateway}/24 dev {LAN_IF}"));
        router.ip(&format!("link set {LAN_IF} up"));
        router.sysctl("net.ipv4.ip_forward", "1");
        router.sysctl_if_present("net.bridge.bridge-nf-call-iptables", "0");
        let mut list = Vec::new();
        for i in 0..hosts {
            let ns = Netns::create(&ns_name(&format!("host{i}")));
            let ip = Ipv4Addr::new(10, a, b, 2 + i as u8);
            router.ip(&format!(
                "link add l{i} type veth peer name eth0 netns {}",
                ns.name()
            ));
            router.ip(&format!("link set l{i} master {LAN_IF}"));
            router.ip(&format!("link set l{i} up"));
            ns.ip(&format!("addr add {ip}/24 dev eth0"));
            ns.ip("link set eth0 up");
            ns.ip(&format!("route add default via {gateway}"));
            list.push(Host { ns, ip });
        }
        let ips: Vec<Ipv4Addr> = list.iter().map(|h| h.ip).collect();
        router.nft(&router::ruleset(kind, &ips));
        Home {
            kind,
            wan,
            hosts: list,
            router: Some(router),
            wan_ip,
        }
    }

    /// Attaches a WAN link's public end to the bridge.
    fn plug(&self, port: &str) {
        self.ns.ip(&format!("link set {port} master {BRIDGE}"));
        self.ns.ip(&format!("link set {port} up"));
    }
}

/// A host namespace: where a `peerchat-cli` runs.
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// Its interface address (private behind a router, public otherwise).
    pub ip: Ipv4Addr,
}

/// One home: the WAN link, the hosts and the router. Dropping it removes them all.
pub struct Home {
    /// How it is connected.
    pub kind: NatKind,
    // Field order is drop order: the link's threads stop before the namespaces go.
    wan: DelayLink,
    /// The hosts, in the order asked.
    pub hosts: Vec<Host>,
    router: Option<Netns>,
    /// The public address of the home (the router's WAN or the public host's).
    pub wan_ip: Ipv4Addr,
}

impl Home {
    /// Changes the delay of the WAN link.
    pub fn set_delay(&self, delay: Duration) {
        self.wan.set_delay(delay);
    }

    /// The router's namespace, if the home has one.
    pub fn router(&self) -> Option<&Netns> {
        self.router.as_ref()
    }
}
