//! A real PostgreSQL server for tests: started once per test process, on 127.0.0.1 on a free
//! port, in a temporary data directory, and killed when the process ends (the kernel sends it
//! SIGKILL when its parent thread, which lives as long as the process, goes).
//!
//! The server binaries are found at `$WECOM_ARCHIVE_PG_BIN`, or in the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package; `.ci/run` installs it). Without
//! them a test says so and passes, unless `WECOM_ARCHIVE_REQUIRE_PG=1` (CI) makes that a failure.
//! As root the server runs as the `postgres` user, since `initdb` refuses root.
//!
//! Every caller of [`fresh_url`] gets its own schema (through `search_path` in the URL), so the
//! tests of one process share the server without seeing each other's tables.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server.
pub struct PgServer {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The folder of its data directory and socket.
    pub dir: PathBuf,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WECOM_ARCHIVE_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// The `postgres` user's uid and gid, when this process is root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail; getpwnam returns a pointer into static storage, read at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        if pw.is_null() {
            panic!("running as root, and there is no `postgres` user to run the test server as");
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>, die_with_parent: bool) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(bin.join(name));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if let Some((uid, gid)) = user {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After setuid, which clears it.
            if die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            Ok(())
        });
    }
    c
}

/// Removes the data folders of test processes that have ended.
fn remove_stale(tmp: &Path) {
    for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("wecom-archive-pg-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn start() -> Result<PgServer, String> {
    let bin = find_bin().ok_or(
        "PostgreSQL server binaries not found: install Debian's `postgresql` package or set \
         WECOM_ARCHIVE_PG_BIN to the folder holding `initdb` and `postgres`",
    )?;
    let user = run_as();
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("wecom-archive-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let out = command(&bin, "initdb", user, false)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = user {
        let _ = std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid));
    }
    // Durability of the test server is not under test (workers are killed, never it).
    command(&bin, "postgres", user, true)
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=300"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    loop {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("postgres did not start: {e}\n{log}"));
            }
        }
    }
    Ok(PgServer { port, dir })
}

/// The process's server, started on first use; `None` (after saying why) when PostgreSQL is
/// not installed and not required.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    let started = SERVER.get_or_init(|| {
        // The server dies with the thread that started it: start it from one that never ends.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(start());
            loop {
                std::thread::park();
            }
        });
        rx.recv()
            .unwrap_or_else(|_| Err("the starter thread died".into()))
    });
    match started {
        Ok(s) => Some(s),
        Err(why) => {
            if std::env::var("WECOM_ARCHIVE_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A URL of the server whose `search_path` is a new, empty schema.
pub fn fresh_url() -> Option<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = server()?;
    let schema = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    // On a thread of its own: the client cannot block inside an async test's runtime.
    let (admin_url, create) = (base.clone(), format!("CREATE SCHEMA {schema}"));
    std::thread::spawn(move || {
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect");
        admin.batch_execute(&create).expect("create schema");
    })
    .join()
    .expect("creating the test schema");
    Some(format!("{base}?options=-csearch_path%3D{schema}"))
}
