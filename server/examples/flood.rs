//! One address opening connections as fast as it can (issue #10 item 3), against an
//! in-process server with the production limits: how many connections the server holds, and a
//! real client's password-login latency (from another loopback address) meanwhile.
//!
//! ```sh
//! cargo run --release -p peerchat-server --example flood --features test-keys -- [ATTEMPTS] [SECS]
//! ```
//! Defaults: 20,000 attempts or 60 s, whichever ends first. Each attempt connects, completes
//! the handshake and then pings without logging in, as the attack in the issue did.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerchat_proto::message::{Request, ResponseBody, Secret, ServerFrame};
use peerchat_proto::wire::{self, ChannelKind};
use peerchat_proto::{test_keys, Channel, LocalIdentity, Role};
use peerchat_server::Config;
use tokio::net::{TcpSocket, TcpStream};

const PW: &str = "flood test password";

async fn request(
    ch: &mut Channel<TcpStream>,
    id: u64,
    req: Request,
) -> Result<ResponseBody, String> {
    ch.writer
        .send(&req.into_message(id))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let m: wire::ServerMessage = ch
            .reader
            .recv()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("eof")?;
        if let ServerFrame::Response { request_id, result } =
            ServerFrame::try_from(m).map_err(|e| e.to_string())?
        {
            assert_eq!(request_id, id);
            return result.map_err(|e| e.to_string());
        }
    }
}

async fn connect_from(
    source: [u8; 4],
    addr: SocketAddr,
    id: &LocalIdentity,
) -> Result<Channel<TcpStream>, String> {
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::from((source, 0)))
        .map_err(|e| e.to_string())?;
    let stream = sock.connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Channel::handshake(
        stream,
        id,
        Role::Initiator,
        ChannelKind::ClientServer,
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let attempts: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path().to_path_buf());
    cfg.identity = Some(test_keys::identity(15));
    let (per_addr, deadline) = (cfg.max_connections_per_address, cfg.login_deadline);
    let server = Arc::new(peerchat_server::start(cfg).await.unwrap());
    let addr = server.local_addr;
    println!("server {addr}: MAX_CONNECTIONS_PER_ADDRESS {per_addr}, LOGIN_DEADLINE {deadline:?}");
    let attacker = Arc::new(LocalIdentity::new(test_keys::identity(0)).unwrap());
    let user = Arc::new(LocalIdentity::new(test_keys::identity(1)).unwrap());

    // The real user, from 127.0.0.2, registered before the flood.
    {
        let mut ch = connect_from([127, 0, 0, 2], addr, &user).await.unwrap();
        request(
            &mut ch,
            1,
            Request::Register {
                userid: "victim".into(),
                email: "victim@example.org".into(),
                password: Secret(PW.into()),
            },
        )
        .await
        .unwrap();
    }
    let baseline = {
        let t = Instant::now();
        let mut ch = connect_from([127, 0, 0, 2], addr, &user).await.unwrap();
        request(
            &mut ch,
            1,
            Request::Login {
                userid: "victim".into(),
                password: Secret(PW.into()),
                endpoint: None,
                announcement: Default::default(),
            },
        )
        .await
        .unwrap();
        t.elapsed()
    };
    println!("password login (connect + handshake + Login) before the flood: {baseline:?}");

    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let tried = Arc::new(AtomicUsize::new(0));
    let handshaken = Arc::new(AtomicUsize::new(0));
    let max_held = Arc::new(AtomicUsize::new(0));
    // The flood: 256 connection attempts in flight from 127.0.0.1; each successful one pings
    // every 5 s and never logs in.
    let mut workers = Vec::new();
    for _ in 0..256 {
        let (attacker, tried, handshaken) = (attacker.clone(), tried.clone(), handshaken.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < end && tried.fetch_add(1, Ordering::Relaxed) < attempts {
                if let Ok(mut ch) = connect_from([127, 0, 0, 1], addr, &attacker).await {
                    handshaken.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let mut n = 0;
                        loop {
                            n += 1;
                            let ping = wire::ClientMessage {
                                request_id: 0,
                                body: Some(wire::client_message::Body::Ping(wire::Ping {
                                    nonce: n,
                                })),
                            };
                            if ch.writer.send(&ping).await.is_err() {
                                return;
                            }
                            tokio::select! {
                                r = ch.reader.recv::<wire::ServerMessage>() => {
                                    if !matches!(r, Ok(Some(_))) { return; }
                                }
                                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                            }
                        }
                    });
                }
            }
        }));
    }
    let sampler = {
        let (server, max_held) = (server.clone(), max_held.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                max_held.fetch_max(server.connection_count(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // The real user logs in by password every 500 ms during the flood.
    let mut lat = Vec::new();
    let mut failed = 0;
    while Instant::now() < end && tried.load(Ordering::Relaxed) < attempts {
        let t = Instant::now();
        let ok = async {
            let mut ch = connect_from([127, 0, 0, 2], addr, &user).await?;
            request(
                &mut ch,
                1,
                Request::Login {
                    userid: "victim".into(),
                    password: Secret(PW.into()),
                    endpoint: None,
                    announcement: Default::default(),
                },
            )
            .await
        }
        .await;
        match ok {
            Ok(_) => lat.push(t.elapsed()),
            Err(e) => {
                failed += 1;
                eprintln!("victim login failed: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for w in workers {
        let _ = w.await;
    }
    sampler.abort();
    let took = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "flood: {} attempts in {took:?} from 127.0.0.1, {} completed the handshake",
        tried.load(Ordering::Relaxed).min(attempts),
        handshaken.load(Ordering::Relaxed)
    );
    println!(
        "server held at most {} connections (now {})",
        max_held.load(Ordering::Relaxed),
        server.connection_count()
    );
    if lat.is_empty() {
        println!("victim: no successful login ({failed} failed)");
    } else {
        println!(
            "victim password login during the flood: {} ok, {failed} failed; p50 {:?} p90 {:?} max {:?}",
            lat.len(),
            pct(0.5),
            pct(0.9),
            lat[lat.len() - 1]
        );
    }
}
