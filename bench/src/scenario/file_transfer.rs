//! Scenario 1: a file from one client core to another over loopback, encrypted, written to
//! disk, hash-verified; beside a plain tokio TCP copy of the same file (and scp when an SSH
//! server is available), measured in the same run.
//!
//! Both client cores run in child processes of their own (see [`crate::peer_proc`]): `alice`
//! sends, `bob` receives into a directory on disk, `carol` (when /dev/shm has room)
//! receives into tmpfs, which takes the disk out of the comparison and leaves the cipher and
//! the code. Each end's peak RSS (VmHWM, reset before the transfer) is its own.
//!
//! Timing: from the sender's `send_file` call until the sender sees TransferComplete, i.e.
//! until the receiver has written every byte, `sync_all`ed the file, matched the hash and
//! said FileComplete. With `file-blake3` (SPEC.md §8.3.1) nothing is read before the offer;
//! a version-1 pair hashes SHA-256 first. The baselines' receivers also `sync_all` before
//! they count as done: the plain tokio TCP copy, and the peers of issue 14 (scp against a
//! private sshd, socat, magic-wormhole with a local mailbox and relay) where installed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};

use crate::baseline::{scp, socat, tcp_copy, wormhole};
use crate::peer_proc::{self, PeerProc};
use crate::procfs::mib;
use crate::report::{Better, Row};
use crate::server_proc::ServerProc;
use crate::stats::gb_per_sec;
use crate::testfile;

const SCENARIO: &str = "1 file";

/// The server and client children shared by scenarios 1 and 2.
pub struct PeerFixture {
    server: ServerProc,
    /// The sender.
    pub alice: PeerProc,
    /// Receives onto disk (and is the chat partner of scenario 2).
    pub bob: PeerProc,
    /// Receives into tmpfs, when there is room.
    pub carol: Option<(PeerProc, tempfile::TempDir)>,
    /// bob's download directory.
    pub bob_downloads: PathBuf,
}

impl PeerFixture {
    /// Starts a server and the clients, registers them and makes them friends.
    ///
    /// # Errors
    /// Any child fails to start.
    pub async fn start(work: &Path, tmpfs_room_for: Option<u64>) -> anyhow::Result<Self> {
        let server = ServerProc::spawn(&work.join("peer-server"), 1024, false).await?;
        let addr = server.addr.to_string();
        let bob_downloads = work.join("bob-downloads");
        let mut alice = PeerProc::spawn(&addr, &work.join("alice"), "alice", 1, None).await?;
        let mut bob =
            PeerProc::spawn(&addr, &work.join("bob"), "bob", 2, Some(&bob_downloads)).await?;
        peer_proc::befriend(&mut alice, &mut bob).await?;
        let shm = Path::new("/dev/shm");
        let carol = match tmpfs_room_for {
            Some(size) if testfile::free_bytes(shm) > size + size / 4 + (256 << 20) => {
                let dir = tempfile::Builder::new()
                    .prefix("peerchat-bench-")
                    .tempdir_in(shm)?;
                let mut carol =
                    PeerProc::spawn(&addr, &work.join("carol"), "carol", 3, Some(dir.path()))
                        .await?;
                peer_proc::befriend(&mut alice, &mut carol).await?;
                Some((carol, dir))
            }
            _ => None,
        };
        Ok(Self {
            server,
            alice,
            bob,
            carol,
            bob_downloads,
        })
    }

    /// Stops every child.
    pub async fn stop(self) {
        self.alice.stop().await;
        self.bob.stop().await;
        if let Some((c, _dir)) = self.carol {
            c.stop().await;
        }
        self.server.stop().await;
    }
}

/// One Peerchat transfer's figures.
struct Transfer {
    total: Duration,
    hashing: Duration,
    sender_peak: u64,
    sender_before: u64,
    receiver_peak: u64,
    receiver_before: u64,
}

async fn transfer(
    alice: &mut PeerProc,
    to: &mut PeerProc,
    src: &Path,
    want: &[u8; 32],
) -> anyhow::Result<Transfer> {
    alice.call("reset-peak", "OK").await?;
    to.call("reset-peak", "OK").await?;
    let sender_before = alice.memory().await?.rss;
    let receiver_before = to.memory().await?.rss;
    to.send("expect-file").await?;
    let offered = alice
        .call(
            &format!("send-file {} {}", to.userid, src.display()),
            "OFFERED",
        )
        .await?;
    let done = alice.answer("DONE").await?;
    let path = PathBuf::from(to.answer("RECEIVED").await?);
    let sender_peak = alice.memory().await?.hwm;
    let receiver_peak = to.memory().await?.hwm;
    let got = tokio::task::spawn_blocking({
        let p = path.clone();
        move || testfile::sha256(&p)
    })
    .await??;
    ensure!(
        &got == want,
        "received file {} does not match the source",
        path.display()
    );
    std::fs::remove_file(&path)?;
    Ok(Transfer {
        total: Duration::from_secs_f64(done.parse()?),
        hashing: Duration::from_secs_f64(offered.parse()?),
        sender_peak,
        sender_before,
        receiver_peak,
        receiver_before,
    })
}

async fn baseline_copy(src: &Path, dir: &Path, want: &[u8; 32]) -> anyhow::Result<Duration> {
    let dst = dir.join("tcp-copy.bin");
    let t = tcp_copy::copy(src, &dst).await?;
    let got = tokio::task::spawn_blocking({
        let d = dst.clone();
        move || testfile::sha256(&d)
    })
    .await??;
    ensure!(&got == want, "baseline copy does not match the source");
    std::fs::remove_file(&dst)?;
    Ok(t)
}

/// Runs the scenario and appends its rows.
///
/// # Errors
/// Set-up failures or a transfer that fails or arrives corrupted.
pub async fn run(
    fx: &mut PeerFixture,
    work: &Path,
    size: u64,
    local: &peerchat_proto::LocalIdentity,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let src = work.join("bench-file.bin");
    let t0 = Instant::now();
    let want = tokio::task::spawn_blocking({
        let s = src.clone();
        move || -> std::io::Result<[u8; 32]> {
            let h = testfile::create(&s, size)?;
            // Start every measurement with the source on disk and no dirty pages queued.
            // SAFETY: sync() takes no arguments and cannot fail.
            unsafe { libc::sync() };
            Ok(h)
        }
    })
    .await??;
    eprintln!(
        "scenario 1: created {} MiB test file in {:.1} s",
        size >> 20,
        t0.elapsed().as_secs_f64()
    );
    fx.alice
        .call(&format!("warm {} 10", fx.bob.userid), "OK")
        .await?;

    let gib = size as f64 / (1u64 << 30) as f64;
    let label = if size >= 1 << 30 {
        format!("{gib:.0} GiB")
    } else {
        format!("{} MiB", size >> 20)
    };

    // Disk: baseline first, then Peerchat, alternating as closely as possible.
    std::fs::create_dir_all(&fx.bob_downloads)?;
    let base_disk = baseline_copy(&src, &fx.bob_downloads, &want)
        .await
        .context("baseline copy")?;
    let pc_disk = transfer(&mut fx.alice, &mut fx.bob, &src, &want)
        .await
        .context("peerchat transfer to disk")?;
    let pc_rate = gb_per_sec(size, pc_disk.total);
    rows.push(
        Row::new(SCENARIO, &format!("{label} to disk, throughput"), pc_rate, "GB/s", Better::Higher)
            .baseline("plain tokio TCP copy + fsync", gb_per_sec(size, base_disk))
            .target_ratio("≥ 0.5× TCP copy", 0.5)
            .note(&format!(
                "{:.2} s end to end incl. {:.2} s before the offer (the pre-hash, if any); without it {:.3} GB/s; received file SHA-256 verified",
                pc_disk.total.as_secs_f64(),
                pc_disk.hashing.as_secs_f64(),
                gb_per_sec(size, pc_disk.total.saturating_sub(pc_disk.hashing))
            )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            "sender peak RSS (own process)",
            mib(pc_disk.sender_peak),
            "MiB",
            Better::Lower,
        )
        .baseline(
            "same process before the transfer",
            mib(pc_disk.sender_before),
        )
        .target_value("< 64 MiB", 64.0)
        .note("VmHWM of the sending client's process, reset before the transfer"),
    );
    rows.push(
        Row::new(
            SCENARIO,
            "receiver peak RSS (own process)",
            mib(pc_disk.receiver_peak),
            "MiB",
            Better::Lower,
        )
        .baseline(
            "same process before the transfer",
            mib(pc_disk.receiver_before),
        )
        .target_value("< 64 MiB", 64.0)
        .note("VmHWM of the receiving client's process, reset before the transfer"),
    );

    // tmpfs: the disk out of the picture.
    let mut pc_tmpfs_rate = None;
    match fx.carol.as_mut() {
        Some((carol, dir)) => {
            let dir = dir.path().to_owned();
            let base = baseline_copy(&src, &dir, &want)
                .await
                .context("baseline copy to tmpfs")?;
            let pc = transfer(&mut fx.alice, carol, &src, &want)
                .await
                .context("peerchat transfer to tmpfs")?;
            pc_tmpfs_rate = Some(gb_per_sec(size, pc.total));
            rows.push(
                Row::new(SCENARIO, &format!("{label} to tmpfs, throughput"), gb_per_sec(size, pc.total), "GB/s", Better::Higher)
                    .baseline("plain tokio TCP copy to tmpfs", gb_per_sec(size, base))
                    .target_ratio("≥ 0.5× TCP copy", 0.5)
                    .note(&format!(
                        "no disk: cipher + code; {:.2} s incl. {:.2} s before the offer; peaks sender {:.0} MiB, receiver {:.0} MiB",
                        pc.total.as_secs_f64(),
                        pc.hashing.as_secs_f64(),
                        mib(pc.sender_peak),
                        mib(pc.receiver_peak)
                    )),
            );
        }
        None => rows.push(Row::skipped(
            SCENARIO,
            &format!("{label} to tmpfs, throughput"),
            "GB/s",
            "/dev/shm missing or too small",
        )),
    }

    // Peers, in the same run (issue 14): scp against a private sshd on loopback, socat,
    // magic-wormhole with a local mailbox and transit relay. Each copy ends with an fsync of
    // the received file, as Peerchat's does.
    let mut places = vec![("disk", fx.bob_downloads.clone(), pc_rate)];
    if let (Some(rate), Some((_, dir))) = (pc_tmpfs_rate, fx.carol.as_ref()) {
        places.push(("tmpfs", dir.path().to_owned(), rate));
    }
    let (w, s2, l2) = (work.to_owned(), src.clone(), label.clone());
    let peer = tokio::task::spawn_blocking(move || peer_rows(&w, &s2, size, &l2, &places)).await?;
    rows.extend(peer);

    // The protocol layer alone: encode + seal + open + decode of 256 KiB FileChunks, one core.
    let (a, b) = (
        local.clone(),
        peerchat_proto::LocalIdentity::new(peerchat_proto::test_keys::identity(14))?,
    );
    let amount = size.min(1 << 30);
    let t =
        tokio::task::spawn_blocking(move || crate::cipher::file_chunks(&a, &b, amount)).await??;
    rows.push(
        Row::new(SCENARIO, "protocol layer in memory, one core", gb_per_sec(amount, t), "GB/s", Better::Higher)
            .note("FileChunk frames encoded, sealed (ChaCha20-Poly1305), opened and decoded on one thread: the per-core ceiling of the cipher plus framing"),
    );
    std::fs::remove_file(&src)?;
    Ok(())
}

/// One copy by a peer program: checks the received size, removes it, returns GB/s.
fn peer_copy(
    size: u64,
    dst: &Path,
    copy: impl FnOnce(&Path) -> anyhow::Result<crate::baseline::PeerRun>,
) -> anyhow::Result<f64> {
    let t = copy(dst)?.wall;
    let got = std::fs::metadata(dst)?.len();
    let _ = std::fs::remove_file(dst);
    ensure!(got == size, "{} has {got} bytes, not {size}", dst.display());
    Ok(gb_per_sec(size, t))
}

/// The peer rows: for each place (disk, tmpfs) Peerchat's rate of that place beside each
/// peer program's, with the targets (≥ 1.5× scp aes128-gcm, ≥ 0.5× socat).
fn peer_rows(
    work: &Path,
    src: &Path,
    size: u64,
    label: &str,
    places: &[(&str, PathBuf, f64)],
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add =
        |place: &str, pc: f64, peer: &str, r: anyhow::Result<f64>, target: Option<(&str, f64)>| {
            let metric = format!("{label} to {place}, vs {peer}");
            match r {
                Ok(rate) => {
                    let mut row = Row::new(SCENARIO, &metric, pc, "GB/s", Better::Higher)
                        .baseline(&format!("{peer}, + fsync"), rate);
                    if let Some((text, limit)) = target {
                        row = row.target_ratio(text, limit);
                    }
                    rows.push(row);
                }
                Err(e) => rows.push(Row::skipped(
                    SCENARIO,
                    &metric,
                    "GB/s",
                    &format!("skipped: {e:#}"),
                )),
            }
        };
    match scp::PrivateSshd::start(work) {
        Ok(sshd) => {
            for (place, dir, pc) in places {
                for (name, cipher) in scp::CIPHERS {
                    let r = peer_copy(size, &dir.join("scp-copy.bin"), |d| {
                        sshd.copy(src, d, cipher)
                    });
                    let target = (name == "aes128-gcm").then_some(("≥ 1.5× scp aes128-gcm", 1.5));
                    add(place, *pc, &format!("scp {name} (private sshd)"), r, target);
                }
            }
        }
        Err(why) => add("disk", 0.0, "scp", Err(anyhow::anyhow!(why)), None),
    }
    match socat::unavailable() {
        None => {
            for (place, dir, pc) in places {
                let r = peer_copy(size, &dir.join("socat-copy.bin"), |d| socat::copy(src, d));
                add(place, *pc, "socat TCP copy", r, Some(("≥ 0.5× socat", 0.5)));
            }
        }
        Some(why) => add("disk", 0.0, "socat", Err(anyhow::anyhow!(why)), None),
    }
    match wormhole::LocalWormhole::start(work) {
        Ok(wh) => {
            for (place, dir, pc) in places {
                let r = peer_copy(size, &dir.join("wormhole-copy.bin"), |d| wh.copy(src, d));
                add(
                    place,
                    *pc,
                    "magic-wormhole (local mailbox + relay)",
                    r,
                    None,
                );
            }
        }
        Err(why) => add(
            "disk",
            0.0,
            "magic-wormhole",
            Err(anyhow::anyhow!(why)),
            None,
        ),
    }
    rows
}
