//! Alert delivery, end to end: alerts enqueued in a state database, `wecom-archive alerts --send`
//! (the real binary) against a receiver on 127.0.0.1 that fails some requests. Every alert is
//! accepted exactly once per webhook whose filter it meets, none is lost across a restart, the
//! rate limit bounds the requests, and no webhook key appears in any output.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use wecom_archive::compliance::alerts::format::idempotency_key;
use wecom_archive::compliance::rules::Severity;
use wecom_archive::state::{NewAlert, StateStore, WebhookOutbox};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const ROBOT_KEY: &str = "ROBOTKEY-5c1e7b2a-do-not-print";
const SIEM_KEY: &str = "SIEMTOKEN-93af02d4-do-not-print";

/// What the receiver does with the next request on a path.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// HTTP 500.
    Fail,
    /// Answers after the client's timeout (the client gives up: not accepted).
    Hang,
    /// The robot's rate-limit answer: HTTP 200 with errcode 45009.
    Freq,
}

#[derive(Default)]
struct Receiver {
    /// Path → what its next requests get (front first); then they are accepted.
    script: BTreeMap<String, Vec<Act>>,
    /// Path → requests received.
    requests: BTreeMap<String, usize>,
    /// Path → alerts accepted (the JSON's idempotency keys; the robot's msgids), in order.
    accepted: BTreeMap<String, Vec<String>>,
    /// Batch keys of accepted requests.
    batch_keys: Vec<String>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn hook(
    State(r): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let path = uri.path().to_owned();
    let act = {
        let mut r = r.lock().unwrap();
        *r.requests.entry(path.clone()).or_default() += 1;
        let script = r.script.entry(path.clone()).or_default();
        (!script.is_empty()).then(|| script.remove(0))
    };
    let robot = path.starts_with("/cgi-bin/webhook/send");
    match act {
        Some(Act::Fail) => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Some(Act::Hang) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return (StatusCode::INTERNAL_SERVER_ERROR, "too late").into_response();
        }
        Some(Act::Freq) => {
            return axum::Json(serde_json::json!({
                "errcode": 45009, "errmsg": "api freq out of limit"
            }))
            .into_response()
        }
        None => {}
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<String> = if robot {
        assert_eq!(v["msgtype"], "markdown");
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= 4096, "{}", content.len());
        content
            .lines()
            .filter_map(|l| l.split(" · msgid ").nth(1))
            .map(|id| id.trim_matches('`').to_owned())
            .collect()
    } else {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["idempotency_key"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut r = r.lock().unwrap();
    r.accepted.entry(path).or_default().extend(ids);
    if let Some(k) = headers.get("idempotency-key") {
        r.batch_keys.push(k.to_str().unwrap().to_owned());
    }
    if robot {
        axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok"})).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// A receiver on `addr` (port 0: any) in its own thread and runtime; it stops when the test
/// process ends.
fn start_receiver(addr: SocketAddr, state: Shared) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .route("/{*path}", post(hook))
                .with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn alert(i: u64, severity: Severity) -> NewAlert {
    NewAlert {
        corp_id: "wwalerts01".into(),
        seq: i,
        msgid: format!("msg{i:03}"),
        conversation_id: Some("single:wmQx3a:zhangsan".into()),
        msgtime_ms: Some(1_764_755_416_000 + i as i64 * 1000),
        from: Some("zhangsan".into()),
        msgtype: "text".into(),
        rule_id: "kickback".into(),
        rule_set_version: "v1".into(),
        severity,
        terms: vec!["返点".into()],
        snippet: format!("给你 {i}% 返点 *urgent*"),
    }
}

fn enqueue(state: &Path, alerts: &[NewAlert]) {
    let mut s = StateStore::open(state).unwrap();
    assert_eq!(s.enqueue_alerts(alerts).unwrap(), alerts.len());
}

fn outboxes(state: &Path) -> BTreeMap<String, WebhookOutbox> {
    let s = StateStore::open(state).unwrap();
    s.alert_outboxes()
        .unwrap()
        .into_iter()
        .map(|o| (o.webhook.clone(), o))
        .collect()
}

fn alerts_cmd(config: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("alerts")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env_remove("WECOM_ARCHIVE_LOG")
        .env("ROBOT_URL_FOR_TEST", "")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config whose state is `dir/state.sqlite`, with `hooks` as its webhook sections.
fn config(dir: &Path, hooks: &str) -> PathBuf {
    let p = dir.join("c.toml");
    std::fs::write(
        &p,
        format!(
            "out = \"out\"\nstate = \"state.sqlite\"\ntimezone = \"Asia/Shanghai\"\n\
             [alerts]\nmin_severity = \"warn\"\nsend_wait_secs = 20\n{hooks}"
        ),
    )
    .unwrap();
    p
}

#[test]
fn every_alert_is_accepted_once_per_webhook_that_wants_it() {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    {
        let mut r = receiver.lock().unwrap();
        r.script
            .insert("/cgi-bin/webhook/send".into(), vec![Act::Fail, Act::Freq]);
        r.script.insert("/hook".into(), vec![Act::Hang, Act::Fail]);
    }
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    std::fs::write(
        dir.path().join("siem_url"),
        format!("http://{addr}/hook?token={SIEM_KEY}\n"),
    )
    .unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[alerts.webhook]]
name = "robot"
kind = "wecom_robot"
url = "http://{addr}/cgi-bin/webhook/send?key={ROBOT_KEY}"
min_severity = "critical"
batch_max = 3
backoff_secs = 1
max_backoff_secs = 1
[[alerts.webhook]]
name = "siem"
kind = "json"
url_file = "siem_url"
batch_max = 4
backoff_secs = 1
max_backoff_secs = 1
timeout_secs = 1
"#
        ),
    );
    let state = dir.path().join("state.sqlite");
    let severities = [Severity::Info, Severity::Warn, Severity::Critical];
    let all: Vec<NewAlert> = (0..12)
        .map(|i| alert(i, severities[i as usize % 3]))
        .collect();
    enqueue(&state, &all);

    let o = alerts_cmd(&cfg, &["--send"]);
    assert!(o.status.success(), "{}", text(&o));

    let r = receiver.lock().unwrap();
    let critical: Vec<String> = all
        .iter()
        .filter(|a| a.severity == Severity::Critical)
        .map(|a| a.msgid.clone())
        .collect();
    let warn_up: Vec<String> = all
        .iter()
        .filter(|a| a.severity >= Severity::Warn)
        .map(idempotency_key)
        .collect();
    assert_eq!(
        r.accepted["/cgi-bin/webhook/send"], critical,
        "robot: each critical once, in order"
    );
    assert_eq!(
        r.accepted["/hook"], warn_up,
        "siem: each warn and critical once, in order"
    );
    // robot: 2 refused + 2 batches (3 + 1); siem: 2 refused + 2 batches (4 + 4).
    assert_eq!(r.requests["/cgi-bin/webhook/send"], 4);
    assert_eq!(r.requests["/hook"], 4);
    let mut keys = r.batch_keys.clone();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "one batch key per accepted batch");
    drop(r);

    let out = outboxes(&state);
    let (robot, siem) = (&out["robot"], &out["siem"]);
    assert_eq!((robot.pending, robot.delivered, robot.failed), (0, 4, 0));
    assert_eq!((siem.pending, siem.delivered, siem.failed), (0, 8, 0));
    // The refused attempts are counted: the first batch of each was tried three times.
    assert_eq!(robot.attempts, 3 * 3 + 1);
    assert_eq!(siem.attempts, 3 * 4 + 4);

    // The status command agrees, and says so in JSON.
    let o = alerts_cmd(&cfg, &["--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["alerts"], 12);
    assert_eq!(v["webhooks"][0]["name"], "robot");
    assert_eq!(v["webhooks"][0]["delivered"], 4);
    assert_eq!(v["webhooks"][1]["delivered"], 8);
    assert_eq!(v["webhooks"][1]["pending"], 0);

    // Sending again sends nothing.
    let o = alerts_cmd(&cfg, &["--send"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(receiver.lock().unwrap().requests["/hook"], 4);
}

#[test]
fn nothing_is_lost_while_the_receiver_is_down_and_nothing_is_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on (yet): connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[alerts.webhook]]
name = "siem"
kind = "json"
url = "http://{addr}/hook?token={SIEM_KEY}"
batch_max = 2
backoff_secs = 1
max_backoff_secs = 1
"#
        ),
    );
    let state = dir.path().join("state.sqlite");
    let all: Vec<NewAlert> = (0..5).map(|i| alert(i, Severity::Warn)).collect();
    enqueue(&state, &all);

    let o = alerts_cmd(&cfg, &["--send", "--max-wait", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("5 alert deliveries still pending"),
        "{}",
        text(&o)
    );
    let siem = &outboxes(&state)["siem"];
    assert_eq!((siem.pending, siem.delivered, siem.failed), (5, 0, 0));
    assert!(siem.attempts >= 2, "attempts are recorded: {siem:?}");
    let error = siem.last_error.clone().unwrap();
    assert!(error.contains("cannot connect"), "{error}");
    assert!(
        !error.contains(SIEM_KEY) && !error.contains("/hook"),
        "{error}"
    );
    assert!(!text(&o).contains(SIEM_KEY), "{}", text(&o));

    // The receiver comes up; the next run delivers everything, once.
    let receiver: Shared = Arc::default();
    start_receiver(addr, receiver.clone());
    let o = alerts_cmd(&cfg, &["--send"]);
    assert!(o.status.success(), "{}", text(&o));
    let want: Vec<String> = all.iter().map(idempotency_key).collect();
    assert_eq!(receiver.lock().unwrap().accepted["/hook"], want);
    let o = alerts_cmd(&cfg, &["--send"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        receiver.lock().unwrap().accepted["/hook"],
        want,
        "none twice"
    );
    let siem = &outboxes(&state)["siem"];
    assert_eq!((siem.pending, siem.delivered, siem.failed), (0, 5, 0));
}

#[test]
fn the_rate_limit_bounds_the_requests_of_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    let cfg = config(
        dir.path(),
        r#"
[[alerts.webhook]]
name = "robot"
kind = "wecom_robot"
url_env = "ROBOT_URL_FOR_TEST"
batch_max = 1
per_minute = 2
"#,
    );
    let state = dir.path().join("state.sqlite");
    enqueue(
        &state,
        &(0..6)
            .map(|i| alert(i, Severity::Critical))
            .collect::<Vec<_>>(),
    );
    let url = format!("http://{addr}/cgi-bin/webhook/send?key={ROBOT_KEY}");
    let o = Command::new(BIN)
        .args(["alerts", "--send", "--max-wait", "3", "--json", "--config"])
        .arg(&cfg)
        .env("ROBOT_URL_FOR_TEST", &url)
        .output()
        .unwrap();
    // 2 sent in the first minute; the 4 others wait for the next window, beyond --max-wait.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        receiver.lock().unwrap().requests["/cgi-bin/webhook/send"],
        2
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sent"]["requests"], 2);
    assert!(v["sent"]["rate_limited"].as_u64().unwrap() >= 1, "{v}");
    let robot = &outboxes(&state)["robot"];
    assert_eq!((robot.pending, robot.delivered), (4, 2));
    assert!(!text(&o).contains(ROBOT_KEY), "{}", text(&o));

    // An unset URL variable is named, never guessed at.
    let o = alerts_cmd(&cfg, &["--send"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("ROBOT_URL_FOR_TEST"), "{}", text(&o));
}

#[test]
fn no_webhook_key_in_any_output_even_when_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    receiver
        .lock()
        .unwrap()
        .script
        .insert("/cgi-bin/webhook/send".into(), vec![Act::Freq; 3]);
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[alerts.webhook]]
name = "robot"
kind = "wecom_robot"
url = "http://{addr}/cgi-bin/webhook/send?key={ROBOT_KEY}"
max_attempts = 2
backoff_secs = 1
max_backoff_secs = 1
"#
        ),
    );
    let state = dir.path().join("state.sqlite");
    enqueue(&state, &[alert(1, Severity::Critical)]);
    let o = Command::new(BIN)
        .args(["-v", "alerts", "--send", "--config"])
        .arg(&cfg)
        .env_remove("WECOM_ARCHIVE_LOG")
        .output()
        .unwrap();
    let all = text(&o);
    // Two attempts, both refused with 45009: kept as failed, and said so.
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(all.contains("1 failed"), "{all}");
    assert!(
        all.contains("robot errcode 45009: api freq out of limit"),
        "{all}"
    );
    assert!(all.contains("127.0.0.1"), "the host is logged: {all}");
    assert!(!all.contains(ROBOT_KEY) && !all.contains("key="), "{all}");
    let robot = &outboxes(&state)["robot"];
    assert_eq!((robot.failed, robot.attempts), (1, 2));
    assert!(!robot.last_error.clone().unwrap().contains(ROBOT_KEY));

    // --retry-failed makes it pending again; the receiver now accepts it.
    let o = alerts_cmd(&cfg, &["--retry-failed", "--send"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 failed deliveries made pending again"),
        "{}",
        text(&o)
    );
    assert_eq!(
        receiver.lock().unwrap().accepted["/cgi-bin/webhook/send"],
        ["msg001"]
    );
}

/// A config with a simulated corp (and, for `serve`, a callback app), whose alerts go to the
/// JSON receiver at `addr`.
fn pull_config(dir: &Path, addr: SocketAddr) -> PathBuf {
    std::fs::write(dir.join("cb.token"), "callbacktoken\n").unwrap();
    std::fs::write(
        dir.join("cb.aes"),
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n",
    )
    .unwrap();
    config(
        dir,
        &format!(
            r#"poll_secs = 1
[[alerts.webhook]]
name = "siem"
kind = "json"
url = "http://{addr}/hook?token={SIEM_KEY}"

[[corp]]
corp_id = "wwsimalerts01"
source = "sim"
sim_messages = 40

[callback]
listen = "127.0.0.1:0"
[callback.app]
corpid = "wwsimalerts01"
token_file = "cb.token"
aes_key_file = "cb.aes"
"#
        ),
    )
}

#[test]
fn pull_once_delivers_the_outbox_after_pulling() {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    let cfg = pull_config(dir.path(), addr);
    let state = dir.path().join("state.sqlite");
    let all: Vec<NewAlert> = (0..3).map(|i| alert(i, Severity::Warn)).collect();
    enqueue(&state, &all);
    let o = Command::new(BIN)
        .args(["pull", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("alerts: 3 delivered, 0 pending, 0 failed"),
        "{}",
        text(&o)
    );
    let want: Vec<String> = all.iter().map(idempotency_key).collect();
    assert_eq!(receiver.lock().unwrap().accepted["/hook"], want);

    // --json carries the same figures; nothing is sent twice.
    enqueue(&state, &[alert(9, Severity::Critical)]);
    let o = Command::new(BIN)
        .args(["pull", "--once", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["alerts"]["delivered"], 1, "{v}");
    assert_eq!(v["alerts"]["pending"], 0, "{v}");
    assert_eq!(receiver.lock().unwrap().accepted["/hook"].len(), 4);
    assert!(!text(&o).contains(SIEM_KEY));
}

/// `GET path` on `addr`, the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_delivers_alerts_as_they_arrive_and_reports_them_in_metrics() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    receiver
        .lock()
        .unwrap()
        .script
        .insert("/hook".into(), vec![Act::Fail]);
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    let cfg = pull_config(dir.path(), addr);
    // Retries after the one failure come quickly.
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"siem\"\n",
        "name = \"siem\"\nbackoff_secs = 1\nmax_backoff_secs = 1\n",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let served = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    // Alerts that arrive while serve runs (as a pull's commit would add them).
    let state = dir.path().join("state.sqlite");
    let all: Vec<NewAlert> = (0..4).map(|i| alert(i, Severity::Critical)).collect();
    enqueue(&state, &all);
    let want: Vec<String> = all.iter().map(idempotency_key).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.lock().unwrap().accepted.get("/hook") != Some(&want) {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = http_get(&served, "/metrics");
        if metrics.contains("wecom_archive_alerts{webhook=\"siem\",status=\"delivered\"} 4") {
            assert!(metrics.contains("wecom_archive_alerts{webhook=\"siem\",status=\"pending\"} 0"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains(SIEM_KEY), "{stderr}");
    assert_eq!(
        receiver.lock().unwrap().requests["/hook"],
        2,
        "one refused, one accepted"
    );
}

#[test]
fn pull_follow_delivers_between_polls() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    let cfg = pull_config(dir.path(), addr);
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("poll_interval_secs = 2\n{text_cfg}")).unwrap();
    let mut child = Command::new(BIN)
        .args(["pull", "--follow", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Alerts that arrive while it follows (as its own commits would add them).
    let state = dir.path().join("state.sqlite");
    let all: Vec<NewAlert> = (0..3).map(|i| alert(i, Severity::Warn)).collect();
    enqueue(&state, &all);
    let want: Vec<String> = all.iter().map(idempotency_key).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.lock().unwrap().accepted.get("/hook") != Some(&want) {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(!stderr.contains(SIEM_KEY), "{stderr}");
    assert_eq!(
        receiver.lock().unwrap().accepted["/hook"],
        want,
        "each once"
    );
}

/// `(msgid, rule_id, rule_set_version, severity)` of every findings row under `out`.
fn findings_rows(out: &Path, format: &str) -> Vec<(String, String, String, String)> {
    let mut rows = Vec::new();
    if format == "delta" {
        use wecom_archive::sink::delta::{read, DeltaTarget, TableKind};
        let target = DeltaTarget::open(out.to_str().unwrap()).unwrap();
        for (_, b) in read::read_rows(&target, TableKind::Findings).unwrap() {
            findings_of(&b, &mut rows);
        }
        return rows;
    }
    let mut stack = vec![wecom_archive::sink::layout::findings_root(out)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".parquet") {
                continue;
            }
            let file = std::fs::File::open(&p).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for b in reader {
                findings_of(&b.unwrap(), &mut rows);
            }
        }
    }
    rows
}

/// (msgid, rule_id, rule_set_version, severity) of each findings row of `b`.
fn findings_of(b: &arrow_array::RecordBatch, rows: &mut Vec<(String, String, String, String)>) {
    use arrow_array::{Array, StringArray};
    let col = |n: &str| {
        b.column_by_name(n)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone()
    };
    let (m, r, v, s) = (
        col("msgid"),
        col("rule_id"),
        col("rule_set_version"),
        col("severity"),
    );
    for i in 0..b.num_rows() {
        rows.push((
            m.value(i).to_owned(),
            r.value(i).to_owned(),
            v.value(i).to_owned(),
            s.value(i).to_owned(),
        ));
    }
}

#[test]
fn a_pull_with_rules_alerts_on_its_findings_at_or_above_the_severity_once() {
    pull_alerts_on_findings_once("parquet");
}

#[test]
fn a_pull_to_delta_tables_alerts_on_its_findings_once() {
    pull_alerts_on_findings_once("delta");
}

/// A pull with rules and a webhook, its output in `format`: every finding at or above the
/// severity is delivered once, also across a failed request and a second pull.
fn pull_alerts_on_findings_once(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Shared = Arc::default();
    // One failure first: the retry must not duplicate anything.
    receiver
        .lock()
        .unwrap()
        .script
        .insert("/hook".into(), vec![Act::Fail]);
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), receiver.clone());
    std::fs::write(
        dir.path().join("rules.toml"),
        r#"
[[rule]]
id = "invoice"
severity = "warn"
keywords = ["发票"]
[[rule]]
id = "discount"
severity = "critical"
keywords = ["优惠"]
scope = "external"
[[rule]]
id = "rush"
severity = "info"
keywords = ["加急"]
"#,
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"out = "out"
format = "{format}"
rules = "rules.toml"
[alerts]
min_severity = "warn"
send_wait_secs = 20
[[alerts.webhook]]
name = "siem"
kind = "json"
url = "http://{addr}/hook?token={SIEM_KEY}"
batch_max = 50
backoff_secs = 1
max_backoff_secs = 1
[[corp]]
corp_id = "wwsimalerts02"
source = "sim"
sim_messages = 1500
"#
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["pull", "--once", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rows = findings_rows(&dir.path().join("out"), format);
    let severities: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(severities.len(), 3, "all three rules fire: {severities:?}");
    let mut want: Vec<String> = rows
        .iter()
        .filter(|r| r.3 != "info")
        .map(|(msgid, rule, version, _)| {
            idempotency_key(&NewAlert {
                corp_id: "wwsimalerts02".into(),
                msgid: msgid.clone(),
                rule_id: rule.clone(),
                rule_set_version: version.clone(),
                ..alert(0, Severity::Warn)
            })
        })
        .collect();
    want.sort();
    let mut got = receiver.lock().unwrap().accepted["/hook"].clone();
    got.sort();
    assert_eq!(got, want, "every warn/critical finding once, no info");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["alerts"]["delivered"], want.len(), "{v}");

    // Pulled again (nothing new): no alert twice.
    let o = Command::new(BIN)
        .args(["pull", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(receiver.lock().unwrap().accepted["/hook"].len(), want.len());
}
