//! The plain-tokio baseline server (hidden subcommand `__tcp-hold`): what holding idle TCP
//! connections, answering a connect and fanning a byte out costs without Peerchat's
//! handshake, encryption, database and presence logic.
//!
//! Wire protocol (private to the benchmark): a client first sends its index as a `u32`
//! (big-endian) and gets one byte `r` back once it is registered; index `u32::MAX` is a
//! probe that is answered and not registered. Later, the bytes `F` + `u32 k` make the server
//! write one byte `!` to the connections with indices `0..k`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

/// The index a connect-rate probe sends.
pub const PROBE: u32 = u32::MAX;

type Registry = Arc<Mutex<HashMap<u32, Arc<OwnedWriteHalf>>>>;

/// Body of `__tcp-hold`: serve until the parent closes our stdin.
///
/// # Errors
/// The listener cannot be bound.
pub async fn hold_main() -> anyhow::Result<()> {
    crate::rlimit::raise_nofile(1 << 20);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTEN {}", listener.local_addr()?);
    let registry: Registry = Arc::default();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(serve(stream, registry.clone()));
        }
    });
    crate::child::wait_for_parent(None).await;
    Ok(())
}

async fn serve(stream: TcpStream, registry: Registry) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (mut r, mut w) = stream.into_split();
    let index = r.read_u32().await?;
    w.write_all(b"r").await?;
    if index == PROBE {
        let mut sink = [0u8; 16];
        while r.read(&mut sink).await? > 0 {}
        return Ok(());
    }
    let w = Arc::new(w);
    lock(&registry).insert(index, w.clone());
    let result = async {
        loop {
            if r.read_u8().await? != b'F' {
                continue;
            }
            let k = r.read_u32().await?;
            let targets: Vec<_> = {
                let reg = lock(&registry);
                (0..k).filter_map(|i| reg.get(&i).cloned()).collect()
            };
            for t in targets {
                // One byte always fits an idle socket's send buffer.
                t.try_write(b"!").context("fan-out write")?;
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    }
    .await;
    lock(&registry).remove(&index);
    result
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
