//! Issue #12: three server nodes on one throwaway PostgreSQL (the bus is its LISTEN/NOTIFY),
//! with clients spread over the nodes. Every guarantee of a single node must hold across
//! nodes (SPEC.md §6.11). Needs Debian's `postgresql` (feature `test-postgres`).
#![cfg(feature = "test-postgres")]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use peerchat_proto::message::{ConnectMode, PushEvent, Request, ResponseBody};
use peerchat_proto::wire::{ChannelKind, CloseReason, ErrorCode};
use peerchat_server::pg_harness::PgCluster;
use peerchat_server::{OffsetClock, RunningServer};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Three in-process nodes on one database, sharing one clock tests can move.
struct Cluster {
    nodes: Vec<RunningServer>,
    url: String,
    clock: Arc<OffsetClock>,
    _dirs: Vec<tempfile::TempDir>,
    _pg: PgCluster,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let pg = tokio::task::spawn_blocking(PgCluster::start)
            .await
            .unwrap()
            .expect("start PostgreSQL");
        let url = pg.create_database().await.unwrap();
        let clock = Arc::new(OffsetClock::default());
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let mut c = config(dir.path(), clock.clone());
            c.database_url = Some(url.clone());
            c.cluster_node = Some(format!("node{i}"));
            // Relay links between the nodes (SPEC.md §6.11 rule 7).
            c.cluster_listen = Some("127.0.0.1:0".parse().unwrap());
            // Expiry is driven by sweep_now() on every node at once.
            c.sweep_interval = Duration::from_secs(3600);
            nodes.push(peerchat_server::start(c).await.unwrap());
            dirs.push(dir);
        }
        Self {
            nodes,
            url,
            clock,
            _dirs: dirs,
            _pg: pg,
        }
    }

    /// A registered, logged-in user on node `node`.
    async fn user(&self, node: usize, userid: &str, key: usize) -> Client {
        let mut c = Client::connect(self.nodes[node].local_addr, key).await;
        c.register(userid).await;
        c.login(userid).await;
        c
    }

    async fn client(&self, node: usize, key: usize) -> Client {
        Client::connect(self.nodes[node].local_addr, key).await
    }
}

fn online_of(p: &PushEvent, who: &str) -> bool {
    matches!(p, PushEvent::FriendOnline { userid, .. } if userid == who)
}

fn offline_of(p: &PushEvent, who: &str) -> bool {
    matches!(p, PushEvent::FriendOffline { userid } if userid == who)
}

/// Presence and every push kind across nodes; session replacement; queued notices once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_behave_as_one_server() {
    let cl = Cluster::start(3).await;
    let mut alice = cl.user(0, "alice", 0).await;
    let mut bob = cl.user(1, "bob", 1).await;
    let mut carol = cl.user(2, "carol", 2).await;

    // Request (node 0 -> node 1) and acceptance (node 1 -> node 0).
    befriend(&mut alice, &mut bob, "bob", "alice").await;

    // Presence: bob leaves node 1 and comes back on node 2; alice on node 0 sees both, with
    // the new session's address and key.
    bob.logout().await;
    alice.expect_push(|p| offline_of(p, "bob")).await;
    let mut bob = cl.client(2, 1).await;
    bob.login("bob").await;
    let ev = alice.expect_push(|p| online_of(p, "bob")).await;
    let PushEvent::FriendOnline { identity_key, .. } = ev else {
        unreachable!()
    };
    assert_eq!(identity_key.to_der().to_vec(), key_der(1));
    // A login snapshot on another node shows the friend online too.
    let mut alice2 = cl.client(1, 0).await;
    let snap = alice2.login("alice").await;
    // ...and that login replaced alice's session on node 0.
    assert_eq!(alice.expect_close().await, CloseReason::SessionReplaced);
    let mut alice = alice2;
    let b = snap.friends.iter().find(|f| f.userid == "bob").unwrap();
    assert!(b.online, "bob (node 2) online in a LoginOk from node 1");

    // Refusal: carol (node 2) -> alice (node 1), refused.
    carol.send_friend_request("alice").await.unwrap();
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestReceived(r) if r.userid == "carol"))
        .await;
    alice.refuse("carol").await.unwrap();
    carol
        .expect_push(
            |p| matches!(p, PushEvent::FriendRequestRefused { userid } if userid == "alice"),
        )
        .await;

    // Queued notice, delivered once: dave (node 0) accepts carol's request while carol is
    // offline; carol logs in on node 1 and gets it once.
    let mut dave = cl.user(0, "dave", 3).await;
    carol.send_friend_request("dave").await.unwrap();
    dave.expect_push(|p| matches!(p, PushEvent::FriendRequestReceived(r) if r.userid == "carol"))
        .await;
    carol.logout().await;
    dave.accept("carol").await.unwrap();
    let mut carol = cl.client(1, 2).await;
    carol.login("carol").await;
    carol
        .expect_push(|p| matches!(p, PushEvent::FriendRequestAccepted(f) if f.userid == "dave"))
        .await;
    carol.barrier().await;
    assert!(
        !carol
            .pushes
            .iter()
            .any(|p| matches!(p, PushEvent::FriendRequestAccepted(_))),
        "notice delivered twice: {:?}",
        carol.pushes
    );

    // Key change: bob logs in with a password from a new key on node 0; alice (node 1) is told.
    let mut bob_new = cl.client(0, 5).await;
    bob_new.login("bob").await;
    assert_eq!(bob.expect_close().await, CloseReason::SessionReplaced);
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendKeyChanged { userid, .. } if userid == "bob"))
        .await;

    // Unfriend across nodes.
    bob_new.unfriend("alice").await.unwrap();
    alice
        .expect_push(|p| matches!(p, PushEvent::Unfriended { userid } if userid == "bob"))
        .await;
}

/// ConnectPeer and the relay across nodes (SPEC.md §6.11 rule 7): the push reaches the friend
/// on another node, and a relay whose two relay connections reach two nodes — neither of
/// them holding the opener's session — is spliced node to node; the peers' own Noise
/// handshake runs through it and proves both identity keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_peer_and_relay_span_nodes() {
    let cl = Cluster::start(3).await;
    let mut alice = cl.user(0, "alice", 0).await;
    let mut bob = cl.user(1, "bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;

    let ok = match alice
        .request(Request::ConnectPeer {
            userid: "bob".into(),
            mode: ConnectMode::Reverse,
        })
        .await
    {
        Ok(ResponseBody::ConnectPeer(ok)) => ok,
        other => panic!("ConnectPeer across nodes: {other:?}"),
    };
    let pushed = bob
        .expect_push(|p| matches!(p, PushEvent::PeerConnectRequested(_)))
        .await;
    let PushEvent::PeerConnectRequested(pushed) = pushed else {
        unreachable!()
    };
    assert_eq!(pushed.userid, "alice");
    assert_eq!(pushed.attempt_id, ok.attempt_id);

    // Alice's relay connection reaches node 2, Bob's node 0.
    let mut ra = Client::connect_kind(cl.nodes[2].local_addr, 0, ChannelKind::Relay).await;
    let id = ra
        .send_request(Request::RelayOpen {
            userid: "alice".into(),
            peer_userid: "bob".into(),
            token: None,
        })
        .await;
    let token = match bob
        .expect_push(|p| matches!(p, PushEvent::RelayInvite { .. }))
        .await
    {
        PushEvent::RelayInvite { userid, token } => {
            assert_eq!(userid, "alice");
            token
        }
        _ => unreachable!(),
    };
    let mut rb = Client::connect_kind(cl.nodes[0].local_addr, 1, ChannelKind::Relay).await;
    assert_eq!(
        rb.request(Request::RelayOpen {
            userid: "bob".into(),
            peer_userid: "alice".into(),
            token: Some(token),
        })
        .await,
        Ok(ResponseBody::RelayOpen)
    );
    assert_eq!(ra.response(id).await, Ok(ResponseBody::RelayOpen));
    let (mut ca, cb) = peer_channels(ra.into_relayed(), rb.into_relayed()).await;

    // A join under a token no node announced is refused.
    let mut rb2 = Client::connect_kind(cl.nodes[1].local_addr, 1, ChannelKind::Relay).await;
    let e = rb2
        .request(Request::RelayOpen {
            userid: "bob".into(),
            peer_userid: "alice".into(),
            token: Some([9; 16]),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::RelayExpired);

    // Bob's session (node 1) ends: node 0, which admitted his relay connection under it,
    // hears it on the bus and closes the link; Alice's end of the relay ends.
    bob.logout().await;
    let end = tokio::time::timeout(WAIT, ca.reader.recv::<peerchat_proto::wire::PeerMessage>())
        .await
        .expect("the relay ends when the joiner's session on another node ends");
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
    drop(cb);
}

/// Request expiry runs once however many nodes sweep at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_expiry_runs_once() {
    let cl = Cluster::start(3).await;
    let mut alice = cl.user(0, "alice", 0).await;
    let _bob = cl.user(1, "bob", 1).await;
    let mut carol = cl.user(2, "carol", 2).await;
    alice.send_friend_request("bob").await.unwrap();
    carol.send_friend_request("bob").await.unwrap();
    carol.logout().await;
    cl.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let (a, b, c) = tokio::join!(
        cl.nodes[0].sweep_now(),
        cl.nodes[1].sweep_now(),
        cl.nodes[2].sweep_now()
    );
    // A node that found the lock taken skips its round; sweep again until both are gone.
    let mut total = a + b + c;
    while total < 2 {
        total += cl.nodes[2].sweep_now().await;
    }
    assert_eq!(total, 2, "each expired request swept once");
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestExpired { userid } if userid == "bob"))
        .await;
    let mut carol = cl.client(0, 2).await;
    carol.login("carol").await;
    carol
        .expect_push(|p| matches!(p, PushEvent::FriendRequestExpired { userid } if userid == "bob"))
        .await;
    for c in [&mut alice, &mut carol] {
        c.barrier().await;
        assert!(
            !c.pushes
                .iter()
                .any(|p| matches!(p, PushEvent::FriendRequestExpired { .. })),
            "told twice: {:?}",
            c.pushes
        );
    }
}

/// Login failures count across nodes: five wrong passwords spread over three nodes lock the
/// account on all of them (N nodes must not multiply an attacker's budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_failures_count_across_nodes() {
    let cl = Cluster::start(3).await;
    cl.user(0, "alice", 0).await;
    // Connected first: the lock after the fifth failure lasts 1 s.
    let mut guessers = Vec::new();
    for i in 0..6 {
        guessers.push(cl.client(i % 3, 1).await);
    }
    for (i, g) in guessers.iter_mut().enumerate() {
        let r = g.login_with("alice", "wrong password, surely", None).await;
        let code = r.unwrap_err().code;
        if i < peerchat_proto::limits::LOGIN_FAIL_ACCOUNT_MAX as usize {
            assert_eq!(code, ErrorCode::BadCredentials, "guess {i}");
        } else {
            assert_eq!(code, ErrorCode::RateLimited, "guess {i} on node {}", i % 3);
        }
    }
}

/// Kills `child` on drop (kill -9), so a failing test leaves no node behind.
struct Killed(Option<tokio::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.start_kill();
        }
    }
}

/// Starts node `name` of `cl`'s database as a process of its own (so that it can be killed
/// or paused); returns it and its listening address.
async fn spawn_node(cl: &Cluster, name: &str) -> (Killed, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(peerchat_server::config::KEY_FILE),
        peerchat_proto::test_keys::pem(SERVER_KEY),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_peerchat-server"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--database-url")
        .arg(&cl.url)
        .arg("--cluster-node")
        .arg(name)
        .stdout(Stdio::piped())
        // Kept in the node's directory: a node that dies shows up to the test only as a
        // refused connection, and its log says why (see `assert_alive`).
        .stderr(std::fs::File::create(dir.path().join(NODE_LOG)).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("node started");
        if let Some(a) = line.strip_prefix("peerchat-server listening on ") {
            break a.trim().parse().unwrap();
        }
    };
    // Keep reading: a closed pipe would make the node's later writes to stdout fail (EPIPE),
    // and a node that dies of it looks like a refused connection to the test.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Killed(Some(child)), addr, dir)
}

/// The node process's stderr, in its data directory.
const NODE_LOG: &str = "node.stderr";

/// Fails with the node's own log if its process has ended.
fn assert_alive(node: &mut Killed, dir: &tempfile::TempDir) {
    let child = node.0.as_mut().expect("node spawned");
    if let Ok(Some(status)) = child.try_wait() {
        let log = std::fs::read_to_string(dir.path().join(NODE_LOG)).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("the node process ended ({status}); its log ends with:\n{tail}");
    }
}

/// Sends `signal` (`STOP`, `CONT`) to the node process.
fn signal(node: &Killed, signal: &str) {
    let pid = node.0.as_ref().and_then(|c| c.id()).expect("node running");
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// A node killed with SIGKILL: its users are shown offline to friends on the other nodes
/// within NODE_DEAD_AFTER + NODE_HEARTBEAT, and they log in again on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_s_users_go_offline_and_reconnect_elsewhere() {
    let cl = Cluster::start(1).await;
    // The third node is a process of its own, so that it can be killed.
    let (mut child, addr, _dir) = spawn_node(&cl, "doomed").await;

    let mut alice = cl.user(0, "alice", 0).await;
    let mut bob = Client::connect(addr, 1).await;
    bob.register("bob").await;
    bob.login("bob").await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;

    child.0.as_mut().unwrap().start_kill().unwrap(); // SIGKILL
    child.0.as_mut().unwrap().wait().await.unwrap();
    assert_eq!(bob.expect_end().await, None, "no Close from a killed node");
    // WAIT (15 s) is above the SPEC bound NODE_DEAD_AFTER + NODE_HEARTBEAT (6 s).
    alice.expect_push(|p| offline_of(p, "bob")).await;
    let mut bob = cl.client(0, 1).await;
    bob.key_login("bob", None).await.unwrap();
    alice.expect_push(|p| online_of(p, "bob")).await;
}

/// A node paused longer than NODE_DEAD_AFTER (SIGSTOP, then SIGCONT) was declared dead by
/// the others; when it resumes it ends its stale sessions with CLOSE_REASON_SERVER_SHUTDOWN,
/// so its clients log in again and are shown online again (SPEC.md §6.11 rule 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_node_ends_the_sessions_the_cluster_declared_offline() {
    let cl = Cluster::start(1).await;
    let (mut sleepy, addr, dir) = spawn_node(&cl, "sleepy").await;
    let mut alice = cl.user(0, "alice", 0).await;
    let mut bob = Client::connect(addr, 1).await;
    bob.register("bob").await;
    bob.login("bob").await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;

    signal(&sleepy, "STOP");
    // WAIT (15 s) is above the SPEC bound NODE_DEAD_AFTER + NODE_HEARTBEAT (6 s).
    alice.expect_push(|p| offline_of(p, "bob")).await;
    signal(&sleepy, "CONT");
    assert_eq!(bob.expect_close().await, CloseReason::ServerShutdown);
    // A refused connection below was seen once in CI runs; if the node died, say why.
    assert_alive(&mut sleepy, &dir);

    // Bob's client logs in again, here on the node that resumed.
    let mut bob = Client::connect(addr, 1).await;
    bob.key_login("bob", None).await.unwrap();
    while !alice.pushes.iter().any(|p| online_of(p, "bob")) {
        alice.next().await;
    }
    alice.barrier().await;
    let last = alice
        .pushes
        .iter()
        .rev()
        .find(|p| online_of(p, "bob") || offline_of(p, "bob"));
    assert!(
        last.is_some_and(|p| online_of(p, "bob")),
        "bob is online in the end: {:?}",
        alice.pushes
    );
}

/// Figures for docs/DEPLOY.md, not a check (no thresholds): cross-node presence latency
/// (logout + login of a user, until the friend on another node has FriendOnline) and
/// concurrent login throughput, on three nodes and on one node of the same database engine.
/// `cargo test -p peerchat-server --features test-postgres,test-keys --test cluster -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement; run by hand"]
async fn cluster_figures() {
    const PAIRS: usize = 20;
    const ROUNDS: usize = 5;
    for nodes in [3usize, 1] {
        let cl = Cluster::start(nodes).await;
        let mut watchers = Vec::new();
        let mut movers = Vec::new();
        for i in 0..PAIRS {
            let (w, m) = (format!("watch{i}"), format!("mover{i}"));
            let mut a = cl.user(i % nodes, &w, i).await;
            let mut b = cl.user((i + 1) % nodes, &m, i + 1).await;
            befriend(&mut a, &mut b, &m, &w).await;
            watchers.push(a);
            movers.push((m, b));
        }
        let mut lat = Vec::new();
        for r in 0..ROUNDS {
            for (i, ((m, b), a)) in movers.iter_mut().zip(watchers.iter_mut()).enumerate() {
                b.logout().await;
                a.expect_push(|p| offline_of(p, m)).await;
                let t0 = std::time::Instant::now();
                b.login(m).await;
                a.expect_push(|p| online_of(p, m)).await;
                lat.push(t0.elapsed());
                let _ = (r, i);
            }
        }
        lat.sort();
        let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
        // A presence change without argon2: SetPeerEndpoint until the friend's FriendOnline
        // carries the new port (what the bus adds per presence change, cross-node vs local).
        let mut moved = Vec::new();
        for r in 0..ROUNDS {
            for ((m, b), a) in movers.iter_mut().zip(watchers.iter_mut()) {
                let port = 4000 + u16::try_from(r).unwrap();
                let t0 = std::time::Instant::now();
                let id = b
                    .send_request(peerchat_proto::message::Request::SetPeerEndpoint {
                        endpoint: peerchat_proto::message::Endpoint { host: None, port },
                        announcement: Default::default(),
                    })
                    .await;
                a.expect_push(|p| {
                    matches!(p, PushEvent::FriendOnline { userid, endpoint: Some(e), .. }
                        if userid == m.as_str() && e.port() == port)
                })
                .await;
                moved.push(t0.elapsed());
                b.response(id).await.unwrap();
            }
        }
        moved.sort();
        let mpct = |q: f64| moved[((moved.len() - 1) as f64 * q).round() as usize];
        println!(
            "nodes={nodes} SetPeerEndpoint -> friend's FriendOnline ({} samples): p50 {:?} p99 {:?}",
            moved.len(),
            mpct(0.5),
            mpct(0.99)
        );
        // Login throughput: every mover logs in again on a fresh connection, all at once.
        let mut conns = Vec::new();
        for i in 0..PAIRS {
            conns.push(cl.client((i + 2) % nodes, i + 1).await);
        }
        let t0 = std::time::Instant::now();
        let mut tasks = Vec::new();
        for (i, mut c) in conns.into_iter().enumerate() {
            let m = format!("mover{i}");
            tasks.push(tokio::spawn(async move {
                c.login(&m).await;
                c
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let dt = t0.elapsed();
        println!(
            "nodes={nodes} presence (login -> friend's FriendOnline, {} samples): p50 {:?} p99 {:?} max {:?}; {PAIRS} concurrent logins in {dt:?} = {:.1}/s",
            lat.len(),
            pct(0.5),
            pct(0.99),
            lat[lat.len() - 1],
            PAIRS as f64 / dt.as_secs_f64()
        );
    }
}
