//! Issue #12: a client configured with several server nodes ("a:7878,b:7878") skips a dead
//! node and connects to the next one; one pin covers the cluster (SPEC.md §6.11).

use peerchat_client::server_session::{dial_server, ServerTarget};
use peerchat_proto::wire::ChannelKind;
use peerchat_proto::{test_keys, LocalIdentity};
use peerchat_server::{Config, RunningServer};

#[tokio::test]
async fn a_dead_first_node_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let server: RunningServer = peerchat_server::start(Config::for_tests(dir.path().into()))
        .await
        .unwrap();
    // A port nobody listens on: bound, then released.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = ServerTarget {
        server: format!("{dead}, {}", server.local_addr),
        known_servers: dir.path().join("known_servers"),
    };
    let local = LocalIdentity::new(test_keys::identity(0)).unwrap();
    let (_chan, _, addr) = dial_server(&target, &local, ChannelKind::ClientServer, None)
        .await
        .unwrap();
    assert_eq!(addr, server.local_addr);
    // The pin was stored under the whole list and holds on the next connect.
    let (_chan, _, _) = dial_server(&target, &local, ChannelKind::ClientServer, None)
        .await
        .unwrap();
    server.shutdown().await;
}
