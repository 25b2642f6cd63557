//! A throwaway PostgreSQL cluster for tests and benchmarks (feature `test-postgres`).
//!
//! Installs nothing: it needs Debian's `postgresql` package (`.ci/install-deps` installs it)
//! and starts a private cluster from it — `initdb` in a temporary directory, `postgres` on a
//! private loopback port with its unix socket in that directory, trust authentication, no
//! fsync. [`PgCluster`] stops it and removes the directory on drop.
//!
//! Why a watchdog shell around `postgres`: a test binary's statics are never dropped, and a
//! test that panics may skip a destructor. The shell holds our end of a pipe on its stdin; when
//! our process ends for any reason the pipe closes, `read` returns, and the shell stops
//! PostgreSQL and deletes its directory. No orphaned server outlives the test run.
//!
//! `initdb` refuses to run as root, so as root every PostgreSQL program runs as the
//! `postgres` system user (`runuser -u postgres`), and the temporary directory is handed to
//! that user first.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait as _, Database};

/// How long the cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a throwaway cluster could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum PgHarnessError {
    /// No `/usr/lib/postgresql/<version>/bin/initdb` (and no `PEERCHAT_PG_BINDIR`).
    #[error("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run `bash .ci/install-deps` or set PEERCHAT_PG_BINDIR")]
    NotInstalled,
    /// A program could not be run or failed.
    #[error("{0}")]
    Command(String),
    /// The server did not accept connections in time.
    #[error("PostgreSQL did not start within {0:?}")]
    Timeout(Duration),
    /// Creating a database failed.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// File-system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A running private PostgreSQL cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    /// The watchdog shell (see the module docs); its stdin is our end of the pipe.
    watchdog: Option<Child>,
    dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `postgres`: `PEERCHAT_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bindir() -> Result<PathBuf, PgHarnessError> {
    if let Some(d) = std::env::var_os("PEERCHAT_PG_BINDIR") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| PgHarnessError::NotInstalled)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or(PgHarnessError::NotInstalled)
}

/// Whether we run as root (initdb refuses that; we switch to `postgres`).
fn is_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs": no libc needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `program args…`, as `postgres` when we are root.
fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, PgHarnessError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PgCluster {
    /// Runs `initdb` and starts `postgres` on a private port; returns once it accepts
    /// connections. Blocking (seconds): call it before or beside the async runtime.
    ///
    /// # Errors
    /// [`PgHarnessError::NotInstalled`] without PostgreSQL; otherwise what failed.
    pub fn start() -> Result<Self, PgHarnessError> {
        let bin = bindir()?;
        let root = is_root();
        let dir = tempfile::Builder::new().prefix("peerchat-pg").tempdir()?;
        if root {
            let st = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !st.success() {
                return Err(PgHarnessError::Command("chown postgres failed".into()));
            }
        }
        let data = dir.path().join("data");
        let out = command(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .stdout(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(PgHarnessError::Command(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let port = free_port()?;
        // $1 postgres, $2 data dir, $3 port, $4 socket dir. fsync off: a test cluster never
        // needs to survive power loss. The log goes to the data dir for post-mortems.
        let script = r#"
            "$1" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
                 >"$4/postgres.log" 2>&1 &
            pid=$!
            read _ignored
            kill -INT "$pid" 2>/dev/null
            wait "$pid"
            rm -rf "$4"
        "#;
        let mut sh = command(Path::new("sh"), root);
        sh.arg("-c")
            .arg(script)
            .arg("pg-watchdog")
            .arg(bin.join("postgres"))
            .arg(&data)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let watchdog = sh.spawn()?;
        let cluster = Self {
            port,
            watchdog: Some(watchdog),
            dir,
        };
        cluster.wait_ready(&bin)?;
        Ok(cluster)
    }

    fn wait_ready(&self, bin: &Path) -> Result<(), PgHarnessError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let ok = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(PgHarnessError::Timeout(START_TIMEOUT))
    }

    /// The loopback port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data directory, the unix socket and `postgres.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of database `db` in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    ///
    /// # Errors
    /// [`PgHarnessError::Db`] if the cluster refuses.
    pub async fn create_database(&self) -> Result<String, PgHarnessError> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = Database::connect(self.url("postgres")).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await?;
        Ok(self.url(&name))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // A line (or EOF) on its stdin tells the watchdog to stop PostgreSQL.
            if let Some(mut stdin) = w.stdin.take() {
                let _ = stdin.write_all(b"stop\n");
            }
            let _ = w.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness starts a cluster, the server's store migrates on it, and drop removes it.
    #[tokio::test]
    async fn starts_migrates_and_stops() {
        let pg = tokio::task::spawn_blocking(PgCluster::start)
            .await
            .unwrap()
            .unwrap();
        let url = pg.create_database().await.unwrap();
        let store = crate::db::Store::connect(&url).await.unwrap();
        store.close().await.unwrap();
        // Migrations are idempotent on PostgreSQL too.
        let store = crate::db::Store::connect(&url).await.unwrap();
        store.close().await.unwrap();
        let dir = pg.dir().to_path_buf();
        drop(pg);
        assert!(!dir.exists(), "the cluster's directory outlived it");
    }
}
