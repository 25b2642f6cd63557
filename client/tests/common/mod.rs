//! Helpers for the end-to-end tests: a real server on 127.0.0.1:0 and real client cores.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use peerchat_client::{AutoAccept, Client, ClientConfig, Event, EventStream};
use peerchat_server::{Config, RunningServer};
use sha2::{Digest, Sha256};

pub const PASSWORD: &str = "correct horse battery";

pub async fn start_server(dir: &Path) -> RunningServer {
    peerchat_server::start(Config::for_tests(dir.to_path_buf()))
        .await
        .expect("server starts")
}

/// A client core with its events and profile folder.
pub struct TestClient {
    pub client: Client,
    pub events: EventStream,
    pub profile: PathBuf,
    pub userid: String,
}

/// Starts a client whose profile is pre-seeded with fixed test key `key`.
pub async fn client(server: &str, root: &Path, userid: &str, key: usize) -> TestClient {
    client_with(server, root, userid, key, |_| {}).await
}

/// [`client`] with a chance to change the configuration.
pub async fn client_with(
    server: &str,
    root: &Path,
    userid: &str,
    key: usize,
    tweak: impl FnOnce(&mut ClientConfig),
) -> TestClient {
    let profile = root.join(userid);
    std::fs::create_dir_all(&profile).unwrap();
    let key_file = profile.join("identity.pem");
    if !key_file.exists() {
        std::fs::write(&key_file, peerchat_proto::test_keys::pem(key)).unwrap();
    }
    let mut config = ClientConfig::new(&profile, server);
    config.peer_listen = "127.0.0.1:0".parse().unwrap();
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(500);
    // These tests move files without a user to click Accept.
    config.auto_accept = AutoAccept::UpTo(u64::MAX);
    tweak(&mut config);
    let (client, events) = Client::start(config).await.expect("client starts");
    TestClient {
        client,
        events,
        profile,
        userid: userid.to_owned(),
    }
}

impl TestClient {
    /// Restarts the same profile (after shutdown), as a relaunched program would.
    pub async fn restart(self, server: &str, root: &Path, key: usize) -> TestClient {
        self.client.shutdown().await;
        client(server, root, &self.userid, key).await
    }

    /// Waits up to `secs` for an event matching `pred`; other events are dropped.
    pub async fn wait_for(
        &mut self,
        secs: u64,
        what: &str,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Event {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!(
                    "{}: event stream ended while waiting for {what}",
                    self.userid
                ),
                Err(_) => panic!(
                    "{}: timed out after {secs} s waiting for {what}",
                    self.userid
                ),
            }
        }
    }

    /// Drops every event queued so far.
    pub fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }
}

/// Registers and logs in.
/// A server and two registered, logged-in friends `alice` (test key `keys.0`) and `bob`
/// (`keys.1`) with profiles under `root`: the set-up most end-to-end tests start from.
pub async fn friends_pair(
    root: &Path,
    keys: (usize, usize),
) -> (RunningServer, String, TestClient, TestClient) {
    let server = start_server(&root.join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client(&addr, root, "alice", keys.0).await;
    let mut bob = client(&addr, root, "bob", keys.1).await;
    register_login(&mut alice).await;
    register_login(&mut bob).await;
    befriend(&mut alice, &mut bob).await;
    (server, addr, alice, bob)
}

pub async fn register_login(c: &mut TestClient) {
    let email = format!("{}@example.org", c.userid);
    c.client
        .register(&c.userid, &email, PASSWORD)
        .await
        .expect("register");
    c.client.login(&c.userid, PASSWORD).await.expect("login");
    c.wait_for(10, "logged_in", |e| matches!(e, Event::LoggedIn { .. }))
        .await;
}

/// Makes `a` and `b` friends (both logged in).
pub async fn befriend(a: &mut TestClient, b: &mut TestClient) {
    a.client
        .send_friend_request(&b.userid)
        .await
        .expect("request");
    let from = a.userid.clone();
    b.wait_for(
        10,
        "friend request",
        |e| matches!(e, Event::FriendRequestReceived { from: f } if *f == from),
    )
    .await;
    b.client.accept_friend(&a.userid).await.expect("accept");
    let bu = b.userid.clone();
    a.wait_for(
        10,
        "friend added",
        |e| matches!(e, Event::FriendAdded { friend } if friend.userid == bu),
    )
    .await;
}

/// Sends a message and waits until the receiver shows it and the sender has the ack.
pub async fn chat(from: &mut TestClient, to: &mut TestClient, text: &str) {
    let id = from
        .client
        .send_message(&to.userid, text)
        .await
        .expect("send");
    let t = text.to_owned();
    to.wait_for(20, &format!("message {text:?}"), |e| matches!(e, Event::MessageReceived { text, message_id, .. } if *text == t && *message_id == id)).await;
    from.wait_for(
        20,
        "ack",
        |e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == id),
    )
    .await;
}

/// A sparse file of `size` bytes with a 4 KiB pattern that depends on the offset every
/// 1 MiB, so misplaced bytes change the hash, created in milliseconds.
pub fn patterned_file(path: &Path, size: u64) -> [u8; 32] {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut at = 0u64;
    while at < size {
        let block: Vec<u8> = (0..4096u64)
            .map(|i| ((at / 1_048_576).wrapping_mul(31).wrapping_add(i) % 251) as u8)
            .collect();
        let n = block.len().min((size - at) as usize);
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&block[..n]).unwrap();
        at += 1_048_576;
    }
    f.sync_all().unwrap();
    drop(f);
    sha256_file(path)
}

pub fn sha256_file(path: &Path) -> [u8; 32] {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().into()
}
