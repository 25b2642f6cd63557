//! A quick load probe, not a benchmark suite: registers and logs in N clients against a
//! running `peerchat-server`, keeps them connected, and reports login latencies.
//!
//! ```sh
//! cargo run --release -p peerchat-server -- --data-dir /tmp/pc-load --register-burst 100000 --max-connections-per-address 100000 &
//! cargo run --release -p peerchat-server --example load --features test-keys -- 127.0.0.1:7878 2000
//! ```
//! Then read the server's RSS from /proc while the clients are connected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerchat_proto::message::{Request, ResponseBody, Secret, ServerFrame};
use peerchat_proto::wire::{self, ChannelKind};
use peerchat_proto::{test_keys, Channel, LocalIdentity};
use tokio::sync::Semaphore;

const PW: &str = "load test password";

async fn request<S>(ch: &mut Channel<S>, id: u64, req: Request) -> Result<ResponseBody, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("127.0.0.1:7878")
        .parse()
        .unwrap();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let prefix = format!("u{}", std::process::id());
    let ids: Arc<Vec<LocalIdentity>> = Arc::new(
        (0..test_keys::COUNT)
            .map(|i| LocalIdentity::new(test_keys::identity(i)).unwrap())
            .collect(),
    );

    // Password-login latency, one at a time (argon2id m=19456 t=2 p=1 on the server).
    {
        let mut ch = Channel::connect(addr, &ids[0], ChannelKind::ClientServer)
            .await
            .unwrap();
        let user = format!("{prefix}-lat");
        let reg = Request::Register {
            userid: user.clone(),
            email: format!("{user}@example.org"),
            password: Secret(PW.into()),
        };
        let t = Instant::now();
        request(&mut ch, 1, reg).await.unwrap();
        println!("register (2 argon2 hashes): {:?}", t.elapsed());
        let mut lat = Vec::new();
        for i in 0..20u64 {
            let t = Instant::now();
            request(
                &mut ch,
                10 + 2 * i,
                Request::Login {
                    userid: user.clone(),
                    password: Secret(PW.into()),
                    endpoint: None,
                    announcement: Default::default(),
                },
            )
            .await
            .unwrap();
            lat.push(t.elapsed());
            request(&mut ch, 11 + 2 * i, Request::Logout).await.unwrap();
        }
        lat.sort();
        println!(
            "password login x20: p50 {:?} p90 {:?} max {:?}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            lat[lat.len() - 1]
        );
        // A fresh connection: the first one has used up its request bucket (50, +20/s).
        let mut ch = Channel::connect(addr, &ids[0], ChannelKind::ClientServer)
            .await
            .unwrap();
        let mut klat = Vec::new();
        for i in 0..20u64 {
            let t = Instant::now();
            request(
                &mut ch,
                100 + 2 * i,
                Request::KeyLogin {
                    userid: user.clone(),
                    endpoint: None,
                    announcement: Default::default(),
                },
            )
            .await
            .unwrap();
            klat.push(t.elapsed());
            request(&mut ch, 101 + 2 * i, Request::Logout)
                .await
                .unwrap();
        }
        klat.sort();
        println!(
            "key login x20: p50 {:?} max {:?}",
            percentile(&klat, 0.5),
            klat[klat.len() - 1]
        );
    }

    // N clients: register + KeyLogin, then stay connected. 64 at a time.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (ids, gate, prefix) = (ids.clone(), gate.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let local = &ids[i % ids.len()];
            let mut ch = Channel::connect(addr, local, ChannelKind::ClientServer)
                .await
                .unwrap();
            let user = format!("{prefix}-{i}");
            let reg = Request::Register {
                userid: user.clone(),
                email: format!("{user}@example.org"),
                password: Secret(PW.into()),
            };
            request(&mut ch, 1, reg).await.unwrap();
            let t = Instant::now();
            let snap = request(
                &mut ch,
                2,
                Request::KeyLogin {
                    userid: user,
                    endpoint: None,
                    announcement: Default::default(),
                },
            )
            .await
            .unwrap();
            assert!(matches!(snap, ResponseBody::Login(_)));
            let lat = t.elapsed();
            drop(permit);
            // Stay alive: answer the server's idle pings.
            let keeper = tokio::spawn(async move {
                while let Ok(Some(m)) = ch.reader.recv::<wire::ServerMessage>().await {
                    if let Ok(ServerFrame::Ping(nonce)) = ServerFrame::try_from(m) {
                        let pong = wire::ClientMessage {
                            request_id: 0,
                            body: Some(wire::client_message::Body::Pong(wire::Pong { nonce })),
                        };
                        if ch.writer.send(&pong).await.is_err() {
                            break;
                        }
                    }
                }
            });
            (keeper, lat)
        }));
    }
    let mut chans = Vec::new();
    let mut lats = Vec::new();
    for t in tasks {
        let (ch, lat) = t.await.unwrap();
        chans.push(ch);
        lats.push(lat);
    }
    lats.sort();
    println!(
        "{n} clients registered and logged in after {:?}; KeyLogin p50 {:?} p99 {:?}",
        started.elapsed(),
        percentile(&lats, 0.5),
        percentile(&lats, 0.99)
    );
    println!("holding {} connections; press Ctrl-C to end", chans.len());
    let hold: u64 = std::env::var("HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(hold)) => {}
    }
}
