//! Measures file throughput and chat round trip between two client cores on loopback,
//! with a real server in the same process.
//!
//! `cargo run --release -p peerchat-client --example loopback_bench -- [GiB] [messages]`
//!
//! Throughput is timed from the receiver's TransferStarted to its TransferComplete, so it
//! includes reading the source, encryption, the loopback socket, decryption, writing the
//! `.part` file, hashing and the final fsync + rename; the sender's up-front SHA-256 pass is
//! timed separately. Round trip is send_message() until the sender sees MessageAcked (the
//! receiver stores the message durably in SQLite before acknowledging).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use peerchat_client::{Client, ClientConfig, Direction, Event, EventStream};

async fn wait(ev: &mut EventStream, mut pred: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(600), ev.recv())
            .await
            .expect("timeout")
            .expect("events");
        if pred(&e) {
            return e;
        }
    }
}

async fn start(
    server: &str,
    root: &std::path::Path,
    name: &str,
    key: usize,
) -> (Client, EventStream) {
    let p = root.join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("identity.pem"), peerchat_proto::test_keys::pem(key)).unwrap();
    let mut c = ClientConfig::new(&p, server);
    c.peer_listen = "127.0.0.1:0".parse().unwrap();
    Client::start(c).await.unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let messages: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .unwrap();
    let server = peerchat_server::start(peerchat_server::Config::for_tests(
        tmp.path().join("server"),
    ))
    .await
    .unwrap();
    let addr = server.local_addr.to_string();
    let (alice, mut ae) = start(&addr, tmp.path(), "alice", 0).await;
    let (bob, mut be) = start(&addr, tmp.path(), "bob", 1).await;
    for (c, n) in [(&alice, "alice"), (&bob, "bob")] {
        c.register(n, &format!("{n}@example.org"), "correct horse battery")
            .await
            .unwrap();
        c.login(n, "correct horse battery").await.unwrap();
    }
    alice.send_friend_request("bob").await.unwrap();
    wait(&mut be, |e| {
        matches!(e, Event::FriendRequestReceived { .. })
    })
    .await;
    bob.accept_friend("alice").await.unwrap();
    wait(&mut ae, |e| matches!(e, Event::FriendAdded { .. })).await;

    // Chat round trip.
    let first = alice.send_message("bob", "warm-up").await.unwrap();
    wait(
        &mut ae,
        |e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == first),
    )
    .await;
    let mut rtts = Vec::with_capacity(messages);
    for i in 0..messages {
        let t = Instant::now();
        let id = alice
            .send_message("bob", &format!("message {i}"))
            .await
            .unwrap();
        wait(
            &mut ae,
            |e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == id),
        )
        .await;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "chat round trip over {messages} messages: median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(rtts[messages / 2]),
        ms(rtts[messages * 9 / 10]),
        ms(rtts[messages - 1])
    );

    // File throughput.
    let size = gib << 30;
    let src = tmp.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&src).unwrap();
        f.set_len(size).unwrap();
        let mut at = 0;
        while at < size {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&(at / 1_048_576).to_le_bytes()).unwrap();
            at += 1_048_576;
        }
    }
    let t_hash = Instant::now();
    let id = alice.send_file("bob", &src).await.unwrap();
    let hash_time = t_hash.elapsed();
    wait(
        &mut be,
        |e| matches!(e, Event::TransferStarted { transfer_id, .. } if *transfer_id == id),
    )
    .await;
    let t = Instant::now();
    let done = wait(&mut be, |e| {
        matches!(e, Event::TransferComplete { transfer_id, direction: Direction::Incoming, .. } if *transfer_id == id)
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "file: {gib} GiB in {secs:.2} s = {:.0} MB/s ({:.0} MiB/s); sender's SHA-256 pass before the offer: {:.2} s",
        size as f64 / secs / 1e6,
        size as f64 / secs / 1_048_576.0,
        hash_time.as_secs_f64()
    );
    if let Event::TransferComplete { path, .. } = done {
        let _ = std::fs::remove_file(path);
    }
    alice.shutdown().await;
    bob.shutdown().await;
    server.shutdown().await;
}
