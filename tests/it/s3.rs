//! A local S3-compatible server for the Delta tests: moto's server mode (PyPI `moto[server]`),
//! started on 127.0.0.1 on a free port by the test that needs it, with one bucket, and stopped
//! when the test ends.
//!
//! The server is found at `$WECOM_ARCHIVE_MOTO_SERVER`, or in the readers' virtual environment
//! (`.venv-readers/bin/moto_server`, made by `scripts/readers.sh`; `.ci/run` makes it before
//! the tests). Without it a test says so and passes, unless `WECOM_ARCHIVE_REQUIRE_S3=1` (CI)
//! makes that a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server with one bucket.
pub struct S3Server {
    child: Child,
    port: u16,
    bucket: String,
}

fn moto_server() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WECOM_ARCHIVE_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-readers/bin/moto_server");
    p.exists().then_some(p)
}

fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

impl S3Server {
    /// Starts a server, or returns `None` (after saying why) when moto is not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = moto_server() else {
            let why = "moto_server not found: run `bash scripts/readers.sh` once (it installs \
                       moto into .venv-readers/) or set WECOM_ARCHIVE_MOTO_SERVER";
            if std::env::var("WECOM_ARCHIVE_REQUIRE_S3").as_deref() == Ok("1") {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            return None;
        };
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let server = S3Server {
            child,
            port,
            bucket: "wecom-archive-test".into(),
        };
        let started = Instant::now();
        loop {
            let put = format!(
                "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                server.bucket
            );
            match http(port, &put) {
                Ok(reply) if reply.starts_with("HTTP/1.1 200") => break,
                Ok(reply) => panic!(
                    "creating the bucket: {}",
                    reply.lines().next().unwrap_or("")
                ),
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("moto_server did not listen on 127.0.0.1:{port} in 30 s: {e}"),
            }
        }
        Some(server)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 settings of the server, as environment variables.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
