//! Shared setup for the `serve` tests: config files, an in-process server on a manual clock,
//! fake pullers, and polling helpers.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wecom_archive::clock::ManualClock;
use wecom_archive::config::Config;
use wecom_archive::emulator::sender::CallbackSender;
use wecom_archive::pull::{Outcome, PullReport};
use wecom_archive::serve::scheduler::Puller;
use wecom_archive::serve::{self, Options, Running};

/// The app's callback Token and EncodingAESKey.
pub const APP_TOKEN: &str = "appCallbackTok3n";
pub const APP_AES: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
/// The suite's callback Token and EncodingAESKey.
pub const SUITE_TOKEN: &str = "suiteCallbackTok3n";
pub const SUITE_AES: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
/// The simulated corp that the app belongs to.
pub const SIM_CORP: &str = "wwsimA";

pub const APP_PATH: &str = "/callback/app";
pub const COMMAND_PATH: &str = "/callback/suite/command";
pub const DATA_PATH: &str = "/callback/suite/data";

/// Writes the secret files and returns the `[callback…]` sections using them.
pub fn callback_sections(dir: &Path, extra: &str) -> String {
    for (name, v) in [
        ("app.token", APP_TOKEN),
        ("app.aes", APP_AES),
        ("suite.token", SUITE_TOKEN),
        ("suite.aes", SUITE_AES),
    ] {
        std::fs::write(dir.join(name), format!("{v}\n")).unwrap();
    }
    format!(
        "[callback]\nlisten = \"127.0.0.1:0\"\n{extra}\n\
         [callback.app]\ntoken_file = \"app.token\"\naes_key_file = \"app.aes\"\n\n\
         [callback.suite]\ntoken_file = \"suite.token\"\naes_key_file = \"suite.aes\"\n"
    )
}

/// A full config: a simulated corp, the app, the emulator's suite and provider.
pub fn write_config(
    dir: &Path,
    api_base: &str,
    callback_extra: &str,
    top: &str,
) -> std::path::PathBuf {
    std::fs::write(
        dir.join("suite.secret"),
        format!("{}\n", super::SUITE_SECRET),
    )
    .unwrap();
    let text = format!(
        "out = \"archive\"\ntimezone = \"UTC\"\npoll_interval_secs = 3600\napi_base = \"{api_base}\"\n{top}\n\
         [app]\ncorpid = \"{SIM_CORP}\"\n\n\
         [suite]\nsuite_id = \"{}\"\nsecret_file = \"suite.secret\"\n\n\
         [provider]\ncorpid = \"{}\"\n\n\
         [[corp]]\ncorp_id = \"{SIM_CORP}\"\nsource = \"sim\"\nsim_messages = 200\n\n{}",
        super::SUITE,
        super::PROVIDER,
        callback_sections(dir, callback_extra)
    );
    let path = dir.join("wecom-archive.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `serve` in process on `clock`.
pub async fn start(
    config: &Path,
    clock: Arc<ManualClock>,
    puller: Option<Arc<dyn Puller>>,
) -> Running {
    let config = Arc::new(Config::load(config).unwrap());
    serve::start(config, Options { clock, puller })
        .await
        .unwrap()
}

/// Senders for the app URL and the suite URLs of `running`.
pub fn senders(running: &Running) -> (CallbackSender, CallbackSender) {
    let base = format!("http://{}", running.addr());
    (
        CallbackSender::new(APP_TOKEN, APP_AES, &base),
        CallbackSender::new(SUITE_TOKEN, SUITE_AES, &base),
    )
}

/// Polls `cond` every 5 ms for up to 30 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A puller that counts pulls and, while closed, blocks until opened (or stopped).
#[derive(Default)]
pub struct GatedPuller {
    pub pulls: AtomicU64,
    open: Mutex<bool>,
    cv: Condvar,
}

impl GatedPuller {
    pub fn new(open: bool) -> Arc<Self> {
        let p = GatedPuller::default();
        *p.open.lock().unwrap() = open;
        Arc::new(p)
    }
    pub fn set_open(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.cv.notify_all();
    }
    pub fn pulls(&self) -> u64 {
        self.pulls.load(Ordering::SeqCst)
    }
}

impl Puller for GatedPuller {
    fn pull(&self, _corp: &str, stop: &AtomicBool) -> PullReport {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open && !stop.load(Ordering::SeqCst) {
            open = self
                .cv
                .wait_timeout(open, Duration::from_millis(10))
                .unwrap()
                .0;
        }
        PullReport {
            outcome: Outcome::Ok,
            ..PullReport::default()
        }
    }
}
