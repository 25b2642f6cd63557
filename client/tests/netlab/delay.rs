//! A delayed Ethernet link between two namespaces, in user space.
//!
//! The lab wants `tc netem delay` on every WAN link, but this machine's kernel is built
//! without `sch_netem` (`CONFIG_NET_SCH_NETEM is not set`; no modules to load), and it has
//! no `sch_fq` for BPF departure times either. So a WAN link here is two TAP devices, one in
//! each namespace, and four threads that carry every frame from one to the other after the
//! link's delay: half of it each way, so the round trip over the link grows by the whole
//! delay, as `netem delay D` on the router's WAN interface would make it. Frames keep their
//! order (one FIFO queue per direction), none are lost, and the delay can be changed while the
//! link runs (the sweep draws a new one per attempt).
//!
//! A TAP device lives as long as its file descriptor: dropping the [`DelayLink`] closes both
//! and the kernel removes the interfaces.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ns::Netns;

/// `TUNSETIFF` from `<linux/if_tun.h>`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// `struct ifreq` with the `ifr_flags` member of its union.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens a new TAP interface `ifname` inside namespace `ns`.
///
/// A short-lived thread enters the namespace ([`Netns::within`]), opens `/dev/net/tun`
/// there (the interface is created in the namespace of the opener) and hands the descriptor
/// back; the test's own threads never change namespace.
fn open_tap(ns: &Netns, ifname: &str) -> File {
    let opened = ns.within(|| -> std::io::Result<File> {
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (d, s) in req
            .name
            .iter_mut()
            .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is.
        if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Non-blocking: a reader woken by poll never sleeps in read (EAGAIN just loops).
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(tun.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(tun.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Ok(tun)
    });
    opened.unwrap_or_else(|e| panic!("cannot make TAP {ifname} in {}: {e}", ns.name()))
}

/// Waits until `fd` is readable or [`POLL`] passes; true if readable.
fn readable(f: &File) -> bool {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, POLL.as_millis() as libc::c_int) };
    n > 0 && p.revents & libc::POLLIN != 0
}

/// A point-to-point Ethernet link with a settable delay; see the module docs.
pub struct DelayLink {
    stop: Arc<AtomicBool>,
    /// Round-trip delay added by the link, in microseconds (half per direction).
    delay_us: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayLink {
    /// Creates TAP `a_if` in `a` and TAP `b_if` in `b` (both down and unaddressed: the caller
    /// configures them with `ip`) and starts carrying frames between them.
    pub fn new(a: &Netns, a_if: &str, b: &Netns, b_if: &str, delay: Duration) -> DelayLink {
        let ta = open_tap(a, a_if);
        let tb = open_tap(b, b_if);
        let dup = |f: &File| {
            f.try_clone()
                .unwrap_or_else(|e| panic!("dup of a TAP descriptor: {e}"))
        };
        let stop = Arc::new(AtomicBool::new(false));
        let delay_us = Arc::new(AtomicU64::new(delay.as_micros() as u64));
        let mut threads = Vec::new();
        for (from, to) in [(dup(&ta), dup(&tb)), (tb, ta)] {
            let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
            let (stop_r, stop_w, d) = (stop.clone(), stop.clone(), delay_us.clone());
            threads.push(std::thread::spawn(move || carry_in(from, tx, &stop_r, &d)));
            threads.push(std::thread::spawn(move || carry_out(to, rx, &stop_w)));
        }
        DelayLink {
            stop,
            delay_us,
            threads,
        }
    }

    /// Changes the round-trip delay for frames that enter the link from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Reads frames and queues each with the time it may leave (now + half the delay).
fn carry_in(
    mut from: File,
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
    stop: &AtomicBool,
    delay_us: &AtomicU64,
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        if !readable(&from) {
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(_) => continue,
        };
        let due = Instant::now() + Duration::from_micros(delay_us.load(Ordering::Relaxed) / 2);
        if tx.send((due, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

/// Writes queued frames when they are due, in order.
fn carry_out(mut to: File, rx: mpsc::Receiver<(Instant, Vec<u8>)>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((due, frame)) = rx.recv_timeout(POLL) else {
            continue;
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // A frame the far side cannot take (interface down) is lost, as on a wire.
        let _ = to.write(&frame);
    }
}

impl Drop for DelayLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
