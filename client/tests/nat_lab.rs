//! The NAT lab matrix: two real `peerchat-cli --json chat` processes behind every pair of
//! home-router kinds reach each other through a real `peerchat-server`, chat both ways and
//! send files, and the path the client reports is checked against [`expected_path`].
//!
//! The network (see `netlab/`) is built from Linux network namespaces, a bridge for the
//! public side, veth pairs and a bridge on each LAN, and nftables on each router. Each WAN link
//! is a user-space TAP delay line (this kernel has no `sch_netem`) that adds a round-trip
//! delay: alice's 20 ms and bob's 60 ms by default.
//!
//! Router kinds, in RFC 4787 terms:
//!
//! | kind         | mapping                         | filtering                        | nft                                 |
//! |--------------|---------------------------------|----------------------------------|-------------------------------------|
//! | `public`     | — (host on the public network)  | —                                | —                                   |
//! | `fullcone`   | endpoint-independent, port kept | endpoint-independent             | `masquerade` + dnat of peer ports   |
//! | `restricted` | endpoint-independent, port kept | address-and-port-dependent       | `masquerade`, new inbound dropped   |
//! | `symmetric`  | address-and-port-dependent      | address-and-port-dependent       | `masquerade fully-random`, dropped  |
//! | `same-nat`   | both hosts behind one `restricted` router, on one LAN                                           |
//!
//! For every ordered pair (alice's kind, bob's kind) and `same-nat`: fresh users log in and
//! become friends; alice sends the first message (she wants the connection), bob answers,
//! alice sends a 50 MiB random file that must arrive byte-identical, bob sends a small file
//! back. The path in alice's `peer_connected` event (`direct | reversed | punched |
//! relayed`) must be the expected one. For relayed pairs, when the server runs with
//! `--relay-tap` (feature `test-hooks`), neither the chat text nor a 64-byte marker inside
//! the file may appear in the bytes the server relayed.
//!
//! Needs root, `ip`, `nft` and `/dev/net/tun` (CI has them: `.ci/install-deps`); fails with
//! the reason otherwise, unless `PEERCHAT_SKIP_NAT_LAB=1`. Environment knobs (used by
//! `scripts/nat-lab` and `scripts/nat-sweep`): `PEERCHAT_NAT_LAB_PAIRS=public:restricted,same-nat`
//! (a subset), `PEERCHAT_NAT_LAB_DELAY_MS=20,60`, `PEERCHAT_NAT_LAB_FILE_MIB=50`,
//! `PEERCHAT_NAT_LAB_JOBS=2` (pairs at once), `PEERCHAT_NAT_LAB_VERBOSE=1` (echo events),
//! `PEERCHAT_NAT_LAB_SERVER=PATH` (another server binary), `PEERCHAT_NAT_LAB_PCAP=1`
//! (tcpdump every router into the pair's directory), `PEERCHAT_NAT_LAB_KEEP=1` (keep the
//! run's directory even when every pair passed),
//! `PEERCHAT_NAT_SWEEP_ATTEMPTS=50` (the ignored `nat_sweep`).
//!
//! Measured and printed, never asserted: time from alice's `/msg` to her `message_acked`,
//! and file throughput. Every wait is for an event, with generous failure time-outs.
//!
//! `lab_routers_map_and_filter_as_their_kind` checks the lab itself (mappings, dropping,
//! simultaneous open) with raw sockets, so a matrix failure points at Peerchat, not the lab.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netlab;

use std::time::{Duration, Instant};

use netlab::router::NatKind;
use netlab::scenario::{contains, run_all, Lab, Outcome, Pair, PathKind, Plan, TestFile};
use netlab::topology::{Home, Internet};
use rand::Rng as _;

/// THE expected-path table (alice wants bob). The client tries, in order: bob's candidates
/// directly; connection reversal if alice is reachable (her observed address is one of her
/// interface addresses); a server-coordinated simultaneous open (up to 3 attempts); the relay.
fn expected_path(pair: Pair) -> PathKind {
    use NatKind::{FullCone, Public, Restricted, Symmetric};
    use PathKind::{Direct, Punched, Relayed, Reversed};
    match pair {
        Pair::SameNat => Direct, // bob's local candidate on the shared LAN
        Pair::Kinds(_, Public | FullCone) => Direct,
        Pair::Kinds(Public, Restricted | Symmetric) => Reversed,
        Pair::Kinds(FullCone, Restricted | Symmetric) => Punched,
        Pair::Kinds(Restricted, Restricted) => Punched,
        Pair::Kinds(Restricted | Symmetric, Symmetric) | Pair::Kinds(Symmetric, Restricted) => {
            Relayed
        }
    }
}

/// Every pair of the matrix: the 16 ordered pairs of kinds, then `same-nat`.
fn all_pairs() -> Vec<Pair> {
    let mut v: Vec<Pair> = NatKind::ALL
        .iter()
        .flat_map(|&a| NatKind::ALL.iter().map(move |&b| Pair::Kinds(a, b)))
        .collect();
    v.push(Pair::SameNat);
    v
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} does not parse")),
        Err(_) => default,
    }
}

/// The pairs to run: all, or those in `PEERCHAT_NAT_LAB_PAIRS`.
/// Pairs left out of the default matrix (the README's test command) while a known bug makes
/// their path depend on timing; `scripts/nat-lab` (PEERCHAT_NAT_LAB_ALL=1) still runs them.
///
/// None now. public → symmetric was here: in about one full run in three a friend's server
/// connection went silent for 15–30 s, so the reversal window passed and the link formed by a
/// later punch. The cause was the lab's (its public bridge changed MAC address as homes came
/// and went, and hosts kept sending to the old one: see `topology::BRIDGE_MAC`), not the
/// client's or the server's.
const KNOWN_TIMING_BUGS: &[&str] = &[];

/// The matrix the test runs by default: every pair but [`KNOWN_TIMING_BUGS`].
fn default_matrix() -> Vec<Pair> {
    if std::env::var("PEERCHAT_NAT_LAB_ALL").is_ok_and(|v| v == "1") {
        return all_pairs();
    }
    all_pairs()
        .into_iter()
        .filter(|p| {
            let skip = KNOWN_TIMING_BUGS.contains(&p.to_string().as_str());
            if skip {
                eprintln!("NAT lab: {p} left out of the default matrix (known timing bug, see KNOWN_TIMING_BUGS; PEERCHAT_NAT_LAB_ALL=1 runs it)");
            }
            !skip
        })
        .collect()
}

fn selected_pairs(default: Vec<Pair>) -> Vec<Pair> {
    match std::env::var("PEERCHAT_NAT_LAB_PAIRS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|p| p.trim().parse().unwrap_or_else(|e| panic!("{e}")))
            .collect(),
        _ => default,
    }
}

/// Fails (or, with `PEERCHAT_SKIP_NAT_LAB=1`, skips) when the lab cannot run here.
fn lab_can_run() -> bool {
    if std::env::var("PEERCHAT_SKIP_NAT_LAB").is_ok_and(|v| v == "1") {
        eprintln!("NAT lab SKIPPED: PEERCHAT_SKIP_NAT_LAB=1");
        return false;
    }
    if let Some(why) = netlab::missing_prerequisites() {
        panic!(
            "the NAT lab cannot run: missing {why}. Run the tests as root after \
             .ci/install-deps, or set PEERCHAT_SKIP_NAT_LAB=1 to skip it knowingly"
        );
    }
    true
}

#[test]
fn pairs_parse_and_every_pair_has_one_expected_path() {
    assert_eq!(all_pairs().len(), 17);
    for p in all_pairs() {
        assert_eq!(p.to_string().parse::<Pair>(), Ok(p));
        let _ = expected_path(p);
    }
    assert!("public:nat".parse::<Pair>().is_err());
    assert!(contains(b"xxNATLABxx", b"NATLAB") && !contains(b"NATLA", b"NATLAB"));
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()))
}

fn delays_from_env() -> (Duration, Duration) {
    let s = std::env::var("PEERCHAT_NAT_LAB_DELAY_MS").unwrap_or_else(|_| "20,60".to_owned());
    let v: Vec<u64> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("PEERCHAT_NAT_LAB_DELAY_MS={s:?}"))
        })
        .collect();
    let a = v.first().copied().unwrap_or(20);
    let b = v.get(1).copied().unwrap_or(a);
    (Duration::from_millis(a), Duration::from_millis(b))
}

/// The relay's cost, from one run (same WAN delays for every pair): the median of the pairs'
/// chat round trips and file throughputs, over the pairs that ended on a direct path
/// (direct, reversed, punched) and over those that ended relayed. The server sits on the
/// public network with no delay of its own, so a relayed round trip crosses the same WAN
/// links as a direct one: the difference is the relay's own cost (two more TCP hops inside
/// the server, its splice and its rate limit).
fn direct_vs_relayed(outcomes: &[Outcome]) -> Vec<String> {
    fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> Option<T> {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v.get(v.len() / 2).copied()
    }
    let group = |relayed: bool| -> Vec<&Outcome> {
        outcomes
            .iter()
            .filter(|o| {
                o.used
                    .as_deref()
                    .is_some_and(|u| (u == "relayed") == relayed)
            })
            .collect()
    };
    [("direct paths", false), ("relayed", true)]
        .iter()
        .map(|&(name, relayed)| {
            let g = group(relayed);
            let rtt = median(g.iter().filter_map(|o| o.chat_rtt).collect());
            let tput = median(g.iter().filter_map(|o| o.throughput_mb_s).collect());
            format!(
                "{name:<13} ({:>2} pairs): chat rtt p50 {:>7}, file throughput median {} MB/s",
                g.len(),
                ms(rtt),
                tput.map_or("-".to_owned(), |t| format!("{t:.1}"))
            )
        })
        .collect()
}

/// Keeps the run's directory (server log, each client's log and `.events`, per pair in
/// `pairN/`) for a post-mortem, without the big random file.
fn keep_logs(tmp: tempfile::TempDir) {
    let dir = tmp.keep();
    let _ = std::fs::remove_file(dir.join("random.bin"));
    eprintln!("logs of this run kept in {}", dir.display());
}

#[test]
fn nat_matrix() {
    if !lab_can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let delays = delays_from_env();
    let mib: u64 = env_or("PEERCHAT_NAT_LAB_FILE_MIB", 50);
    let jobs: usize = env_or("PEERCHAT_NAT_LAB_JOBS", 2);
    let file = TestFile::create(&tmp.path().join("random.bin"), mib * 1024 * 1024);
    let pairs = selected_pairs(default_matrix());
    let started = Instant::now();
    let lab = Lab::start(tmp.path());
    let relay_tap = lab.server.relay_tap.is_some();
    let plans = pairs
        .iter()
        .map(|&pair| Plan {
            pair,
            delays,
            file: Some(&file),
        })
        .collect();
    let outcomes = run_all(&lab, plans, jobs, expected_path);
    let prefix = lab.internet.prefix().to_owned();
    drop(lab);
    netlab::assert_gone(&prefix);

    eprintln!(
        "\n== NAT lab matrix: WAN round-trip delay alice {} ms, bob {} ms; {mib} MiB file; \
         relay tap {}; {:.0} s",
        delays.0.as_millis(),
        delays.1.as_millis(),
        if relay_tap { "on" } else { "off" },
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "{:<11} {:<11} {:<9} {:<9} {:>11} {:>12} {:>10}  result",
        "alice", "bob", "expected", "used", "first msg", "chat rtt p50", "file MB/s"
    );
    for o in &outcomes {
        let (a, b) = o.label.split_once(':').unwrap_or((&o.label, "(same LAN)"));
        eprintln!(
            "{:<11} {:<11} {:<9} {:<9} {:>11} {:>12} {:>10}  {}{}",
            a,
            b,
            o.expected,
            o.used.as_deref().unwrap_or("?"),
            ms(o.first_message),
            ms(o.chat_rtt),
            o.throughput_mb_s
                .map_or("-".to_owned(), |t| format!("{t:.1}")),
            if o.failure.is_some() { "FAIL" } else { "ok" },
            if o.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.notes.join("; "))
            }
        );
    }
    for line in direct_vs_relayed(&outcomes) {
        eprintln!("{line}");
    }
    eprintln!("== end of matrix\n");
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.failure.as_ref().map(|f| format!("{}: {f}", o.label)))
        .collect();
    if !failed.is_empty() || std::env::var("PEERCHAT_NAT_LAB_KEEP").is_ok_and(|v| v == "1") {
        keep_logs(tmp);
    }
    assert!(
        failed.is_empty(),
        "{} of {} pairs failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n---\n")
    );
}

/// The lab's routers map and filter as their kind says (RFC 4787), checked with raw sockets
/// and no Peerchat at all: so a matrix failure is the client's or the server's, not the lab's.
#[test]
fn lab_routers_map_and_filter_as_their_kind() {
    use netlab::probe::{dial, listen};
    use std::net::SocketAddrV4;
    use NatKind::{FullCone, Public, Restricted, Symmetric};
    if !lab_can_run() {
        return;
    }
    netlab::remove_stale_namespaces();
    let internet = Internet::create(&netlab::run_prefix());
    let prefix = internet.prefix().to_owned();
    {
        let delay = Duration::from_millis(10);
        let homes: Vec<Home> = [Public, FullCone, Restricted, Symmetric, Restricted]
            .iter()
            .map(|&k| internet.home(k, 1, delay))
            .collect();
        // The server's MAC stays put while homes come and go (else hosts' cached ARP
        // entries go stale and their server connections stall: topology::BRIDGE_MAC).
        drop(internet.home(Public, 1, delay));
        assert_eq!(
            internet.bridge_mac(),
            netlab::topology::BRIDGE_MAC,
            "the public bridge's MAC address changed as homes came and went"
        );
        let server = netlab::topology::SERVER_IP;
        let stun = [9000, 9001].map(|p| (p, listen(internet.ns(), SocketAddrV4::new(server, p))));
        let patient = Duration::from_secs(20);
        // A quiet 2 s says "dropped": an RST (refusal) would come back within one round trip.
        let dropped_after = Duration::from_secs(2);

        // Mapping: one source port, two destinations. Keep the connections: they hold the
        // mappings open for the filtering checks below.
        let mut keep = Vec::new();
        for h in &homes[..4] {
            let mut seen = Vec::new();
            for (port, l) in &stun {
                let s = dial(
                    &h.hosts[0].ns,
                    40_001,
                    SocketAddrV4::new(server, *port),
                    patient,
                )
                .unwrap_or_else(|e| panic!("{}: dial the public server: {e}", h.kind));
                let (c, from) = l.accept().unwrap();
                keep.push((s, c));
                seen.push(from);
            }
            let ip = if h.kind == Public {
                h.hosts[0].ip
            } else {
                h.wan_ip
            };
            for from in &seen {
                assert_eq!(
                    from.ip(),
                    std::net::IpAddr::V4(ip),
                    "{}: source address",
                    h.kind
                );
            }
            let ports: Vec<u16> = seen.iter().map(|a| a.port()).collect();
            match h.kind {
                Public | FullCone | Restricted => assert_eq!(
                    ports,
                    [40_001, 40_001],
                    "{}: endpoint-independent, port-preserving mapping",
                    h.kind
                ),
                Symmetric => assert!(
                    ports[0] != ports[1] && !ports.contains(&40_001),
                    "symmetric: a new random port per destination, got {ports:?}"
                ),
            }
        }

        // Filtering: unsolicited SYNs from the public host to a port the host listens on.
        let _listeners: Vec<_> = homes[1..4]
            .iter()
            .map(|h| {
                listen(
                    &h.hosts[0].ns,
                    SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 40_002),
                )
            })
            .collect();
        let public = &homes[0].hosts[0].ns;
        for h in &homes[1..4] {
            // Expected to connect: wait patiently; expected to be dropped: 2 s of silence.
            let wait = if h.kind == FullCone {
                patient
            } else {
                dropped_after
            };
            let r = dial(public, 40_010, SocketAddrV4::new(h.wan_ip, 40_002), wait);
            match h.kind {
                FullCone => {
                    r.unwrap_or_else(|e| panic!("fullcone forwards inbound peer ports: {e}"));
                }
                _ => {
                    let e = r
                        .err()
                        .unwrap_or_else(|| panic!("{}: unsolicited SYN got through", h.kind));
                    assert_ne!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused,
                        "{}: unsolicited SYNs must be dropped, not refused with an RST",
                        h.kind
                    );
                }
            }
        }
        // Address-and-port-dependent: the server's address from another port may not use
        // the restricted home's mapping to 198.18.0.1:9000.
        let r = dial(
            internet.ns(),
            9_002,
            SocketAddrV4::new(homes[2].wan_ip, 40_001),
            dropped_after,
        );
        // (Had it passed, the host, with no listener there, would have refused it.)
        match r {
            Ok(_) => panic!("restricted: another port of a known address got a connection"),
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "restricted: another port of a known address reached the host"
            ),
        }

        // Simultaneous open between the two restricted homes, each dialing the other's
        // public address from its own port at the same moment: the hole punch the client does.
        let (a, b) = (&homes[2], &homes[4]);
        std::thread::scope(|s| {
            let ta = s.spawn(|| {
                dial(
                    &a.hosts[0].ns,
                    40_003,
                    SocketAddrV4::new(b.wan_ip, 40_003),
                    patient,
                )
            });
            let tb = s.spawn(|| {
                dial(
                    &b.hosts[0].ns,
                    40_003,
                    SocketAddrV4::new(a.wan_ip, 40_003),
                    patient,
                )
            });
            for (who, t) in [("first", ta), ("second", tb)] {
                t.join().unwrap().unwrap_or_else(|e| {
                    panic!("restricted↔restricted simultaneous open, {who} side: {e}")
                });
            }
        });
    }
    drop(internet);
    netlab::assert_gone(&prefix);
}

/// A punched link acknowledged sooner than this after alice's `/msg` came from the first
/// punch attempt: the direct dials give up after `DIRECT_DIAL_TIMEOUT` (3 s), and a second
/// attempt starts only after the first one's `PUNCH_WINDOW` (5 s) (SPEC.md §7.6).
/// A measurement aid for the sweep only, never an assertion.
const FIRST_PUNCH_DEADLINE: Duration = Duration::from_secs(3 + 5);

/// Hole-punch success over many fresh attempts per punchable pair (not in CI: long).
/// `scripts/nat-sweep` runs it. Each attempt: fresh homes, fresh users, WAN delays drawn
/// from 10–100 ms per side, one message each way. "connected": alice's first message was
/// acknowledged; "punched": her `peer_connected` said `"path": "punched"`; "1st attempt":
/// punched on the first punch attempt — `"attempt": 1` in that event if the client reports
/// it, else inferred from time: acknowledged before [`FIRST_PUNCH_DEADLINE`] (marked `~`).
#[test]
#[ignore = "long: run by scripts/nat-sweep"]
fn nat_sweep() {
    if !lab_can_run() {
        return;
    }
    let attempts: usize = env_or("PEERCHAT_NAT_SWEEP_ATTEMPTS", 50);
    let jobs: usize = env_or("PEERCHAT_NAT_LAB_JOBS", 2);
    let punchable: Vec<Pair> = all_pairs()
        .into_iter()
        .filter(|&p| expected_path(p) == PathKind::Punched)
        .collect();
    let pairs = selected_pairs(punchable);
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::start(tmp.path());
    let mut rng = rand::thread_rng();
    let mut plans = Vec::new();
    for &pair in &pairs {
        for _ in 0..attempts {
            plans.push(Plan {
                pair,
                delays: (
                    Duration::from_millis(rng.gen_range(10..=100)),
                    Duration::from_millis(rng.gen_range(10..=100)),
                ),
                file: None,
            });
        }
    }
    let outcomes = run_all(&lab, plans, jobs, expected_path);
    let prefix = lab.internet.prefix().to_owned();
    drop(lab);
    netlab::assert_gone(&prefix);

    eprintln!("\n== NAT sweep: {attempts} attempts per pair, WAN delays 10–100 ms per side");
    eprintln!(
        "{:<22} {:>8} {:>10} {:>8} {:>12} {:>10}  other outcomes",
        "pair", "attempts", "connected", "punched", "1st attempt", "median msg"
    );
    for &pair in &pairs {
        let label = pair.to_string();
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.label == label).collect();
        let pct = |k: usize| format!("{:.1}%", 100.0 * k as f64 / mine.len().max(1) as f64);
        let connected = mine.iter().filter(|o| o.first_message.is_some()).count();
        let punched: Vec<&&Outcome> = mine
            .iter()
            .filter(|o| o.used.as_deref() == Some("punched"))
            .collect();
        let first = punched
            .iter()
            .filter(|o| match o.attempt {
                Some(n) => n == 1,
                None => o.first_message.is_some_and(|t| t < FIRST_PUNCH_DEADLINE),
            })
            .count();
        let inferred = punched.iter().any(|o| o.attempt.is_none());
        let mut times: Vec<Duration> = mine.iter().filter_map(|o| o.first_message).collect();
        times.sort();
        let median = times.get(times.len() / 2).copied();
        let mut others = std::collections::BTreeMap::<String, usize>::new();
        for o in mine.iter().filter(|o| o.used.as_deref() != Some("punched")) {
            let what = match (&o.used, o.first_message) {
                (Some(u), _) => u.clone(),
                (None, Some(_)) => "no path reported".to_owned(),
                (None, None) => "failed".to_owned(),
            };
            *others.entry(what).or_default() += 1;
        }
        let others: Vec<String> = others.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        eprintln!(
            "{:<22} {:>8} {:>10} {:>8} {:>12} {:>10}  {}",
            label,
            mine.len(),
            pct(connected),
            pct(punched.len()),
            format!("{}{}", if inferred { "~" } else { "" }, pct(first)),
            ms(median),
            others.join(", ")
        );
    }
    if outcomes.iter().any(|o| o.attempt.is_none()) {
        eprintln!(
            "(~: first attempt inferred from time, acknowledged within {} s, where the client \
             did not report the attempt)",
            FIRST_PUNCH_DEADLINE.as_secs()
        );
    }
    eprintln!("== end of sweep\n");
    // Every attempt that was not punched on the first try, with where its logs are.
    for o in outcomes
        .iter()
        .filter(|o| o.used.as_deref() != Some("punched") || o.attempt != Some(1))
    {
        eprintln!(
            "not first-attempt: {} used {} attempt {} delays {}/{} ms first msg {} {} ({})",
            o.label,
            o.used.as_deref().unwrap_or("?"),
            o.attempt.map_or("-".to_owned(), |n| n.to_string()),
            o.delays.0.as_millis(),
            o.delays.1.as_millis(),
            ms(o.first_message),
            o.failure.as_deref().unwrap_or(""),
            o.work
                .as_ref()
                .map_or(String::new(), |w| w.display().to_string())
        );
    }
    if std::env::var("PEERCHAT_NAT_LAB_KEEP").is_ok_and(|v| v == "1") {
        keep_logs(tmp);
    }
}

/// Builds one home of every kind and a second `restricted` one (alice's default delay) and
/// keeps them for
/// `PEERCHAT_NAT_LAB_HOLD_SECS` (default 120) for inspection by hand:
/// `ip netns exec <ns> …`. The names are printed; everything is removed afterwards.
#[test]
#[ignore = "manual: inspect a lab by hand"]
fn nat_lab_hold() {
    if !lab_can_run() {
        return;
    }
    netlab::remove_stale_namespaces();
    let internet = Internet::create(&netlab::run_prefix());
    let delay = delays_from_env().0;
    let homes: Vec<Home> = NatKind::ALL
        .iter()
        .chain([NatKind::Restricted].iter())
        .map(|&k| internet.home(k, 1, delay))
        .collect();
    eprintln!(
        "public namespace {} (bridge 198.18.0.1/16)",
        internet.ns().name()
    );
    for h in &homes {
        eprintln!(
            "{:<10} host {} ({}), router {}, public address {}",
            h.kind.to_string(),
            h.hosts[0].ns.name(),
            h.hosts[0].ip,
            h.router().map_or("-", |r| r.name()),
            h.wan_ip
        );
    }
    std::thread::sleep(Duration::from_secs(env_or(
        "PEERCHAT_NAT_LAB_HOLD_SECS",
        120,
    )));
}
