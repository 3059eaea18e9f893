//! The sections of the configuration file, as they are written. [`super::Config`] owns the file
//! and resolves paths and secrets; these types only say what a section may contain.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::compliance::rules::Severity;
use crate::secret::Secret;

/// `[sdk]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdkSection {
    /// `libWeWorkFinanceSdk_C.so`; env `WECOM_SDK` overrides.
    pub library: Option<PathBuf>,
    /// Proxy URL.
    #[serde(default)]
    pub proxy: String,
    /// Env var holding the proxy credentials.
    pub proxy_password_env: Option<String>,
    /// Per-call timeout, seconds.
    pub timeout_secs: Option<i32>,
    /// Attempts per page on retryable errors (network, parse, system, worker crash).
    pub max_attempts: Option<u32>,
}

/// `[media]`: media download defaults (command-line options override them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// Download the new messages' media after each pull (`pull`; `serve` as messages land).
    #[serde(default)]
    pub on_pull: bool,
    /// Only these kinds (`image`, `voice`, `video`, `emotion`, `file`, `meeting_voice_call`,
    /// `voip_doc_share`, `other`).
    pub types: Option<Vec<String>>,
    /// Skip files announced larger than this many bytes.
    pub max_size: Option<u64>,
    /// Parallel downloads.
    pub concurrency: Option<usize>,
    /// The local folder of the downloaded files when `out` is a URL (needed for `s3://`, whose
    /// media table lives in the bucket while the files stay on this disk); a folder `out` keeps
    /// them under it.
    pub dir: Option<PathBuf>,
}

/// `[fleet]`: how workers sharing a PostgreSQL state divide the corps (see `docs/scale-out.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// How long a corp's lease lasts unless renewed, seconds. A worker renews every third of it
    /// while it pulls; a worker that dies holds its corps this long at most.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
}

fn default_lease_secs() -> u64 {
    60
}

impl Default for FleetSection {
    fn default() -> Self {
        FleetSection {
            lease_secs: default_lease_secs(),
        }
    }
}

/// `[compaction]`: merging a day's small Parquet files once the day is closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionSection {
    /// Compact a corp's closed days (before today in `timezone`) after each pull of
    /// `pull --follow` and `serve` (`compact` does it by hand).
    #[serde(default = "default_true")]
    pub auto: bool,
    /// The size a compacted file aims at, MiB.
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
}

impl Default for CompactionSection {
    fn default() -> Self {
        CompactionSection {
            auto: true,
            target_file_mb: default_target_file_mb(),
        }
    }
}

impl CompactionSection {
    /// The options of an automatic compaction: closed days only (before `today`).
    pub fn options(&self, today: jiff::civil::Date) -> crate::sink::compact::CompactOptions {
        crate::sink::compact::CompactOptions {
            target_file_bytes: self.target_file_mb.max(1) << 20,
            before: Some(today),
            ..Default::default()
        }
    }
}

/// Where a corp's records come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The official SDK (`GetChatData`).
    #[default]
    Sdk,
    /// The built-in simulator (demos, integration tests of `pull`/`serve` without WeCom): its
    /// own keys, no secret.
    Sim,
}

/// `[[corp]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpSection {
    /// The corp id (`ww…`).
    pub corp_id: String,
    /// `sdk` (default) or `sim`.
    #[serde(default)]
    pub source: SourceKind,
    /// With `source = "sim"`: messages in the simulated archive.
    pub sim_messages: Option<u64>,
    /// Env var holding the archive secret.
    pub secret_env: Option<String>,
    /// File holding the archive secret.
    pub secret_file: Option<PathBuf>,
    /// `publickey_ver` → private key PEM file.
    #[serde(default)]
    pub keys: BTreeMap<String, PathBuf>,
}

/// `[callback]`: where and how `serve` receives WeCom callbacks.
///
/// ```toml
/// [callback]
/// listen = "127.0.0.1:8080"        # behind the TLS-terminating reverse proxy
/// timestamp_window_secs = 300      # reject callbacks whose timestamp is further off
/// max_body_bytes = 65536           # larger bodies get 413 before any parsing
/// dedupe_ttl_secs = 3600           # how long a delivery is remembered (WeCom retries 3 times)
/// queue_capacity = 4096            # events waiting to be stored; full = 503
/// header_read_timeout_secs = 10    # a request's headers must arrive within this (also an idle connection)
/// idle_timeout_secs = 60           # a connection with no byte read or written for this long is closed
/// max_connections = 512            # more wait in the listen backlog until one closes
/// shutdown_grace_secs = 10         # on SIGTERM, requests in flight get this long to finish
///
/// [callback.app]                   # self-built app: receiveid = [app] corpid
/// path = "/callback/app"
/// token_env = "WECOM_CALLBACK_TOKEN"            # or token_file
/// aes_key_env = "WECOM_CALLBACK_AES_KEY"        # EncodingAESKey; or aes_key_file
///
/// [callback.suite]                 # third-party / 代开发 suite
/// command_path = "/callback/suite/command"      # receiveid = [suite] suite_id
/// data_path = "/callback/suite/data"            # receiveid = the authorizing corp
/// token_env = "WECOM_SUITE_CALLBACK_TOKEN"
/// aes_key_env = "WECOM_SUITE_CALLBACK_AES_KEY"
/// # GET URL checks on both paths: default [provider] corpid and [suite] suite_id
/// verify_receiveids = ["wwprovider0123456"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSection {
    /// Listen address (`host:port`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest accepted difference between a callback's `timestamp` and now, seconds.
    #[serde(default = "default_window")]
    pub timestamp_window_secs: i64,
    /// Largest accepted request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How long a delivery's dedupe key is remembered, seconds.
    #[serde(default = "default_dedupe_ttl")]
    pub dedupe_ttl_secs: i64,
    /// Capacity of the queue between the HTTP handlers and the event handler.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// From the moment the server waits for a request (on a new or kept-alive connection)
    /// until its headers are complete, seconds; a slower or silent client is disconnected.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// A connection with no byte read or written for this long is closed, seconds.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Most connections open at once; more wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish, seconds (idle connections
    /// are closed at once).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// The self-built app's receive URL.
    pub app: Option<AppCallback>,
    /// The suite's command and data URLs.
    pub suite: Option<SuiteCallback>,
}

/// `[callback.app]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCallback {
    /// URL path.
    #[serde(default = "default_app_path")]
    pub path: String,
    /// The corp (receiveid); default `[app] corpid`.
    pub corpid: Option<String>,
    /// Env var holding the callback Token.
    pub token_env: Option<String>,
    /// File holding the callback Token.
    pub token_file: Option<PathBuf>,
    /// Env var holding the EncodingAESKey.
    pub aes_key_env: Option<String>,
    /// File holding the EncodingAESKey.
    pub aes_key_file: Option<PathBuf>,
}

/// `[callback.suite]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteCallback {
    /// The command (指令) URL path.
    #[serde(default = "default_command_path")]
    pub command_path: String,
    /// The data (数据) URL path.
    #[serde(default = "default_data_path")]
    pub data_path: String,
    /// Env var holding the callback Token.
    pub token_env: Option<String>,
    /// File holding the callback Token.
    pub token_file: Option<PathBuf>,
    /// Env var holding the EncodingAESKey.
    pub aes_key_env: Option<String>,
    /// File holding the EncodingAESKey.
    pub aes_key_file: Option<PathBuf>,
    /// receiveids accepted by GET URL verification (default: `[provider] corpid` and the
    /// suite_id).
    #[serde(default)]
    pub verify_receiveids: Vec<String>,
}

/// `[serve]`: the pull scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Pulls running at the same time, over all corps.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_pulls: usize,
    /// Seconds between fallback polls of each corp (a lost `msgaudit_notify` is caught up);
    /// default `poll_interval_secs`.
    pub fallback_poll_secs: Option<u64>,
    /// Records per commit.
    #[serde(default = "default_commit_every")]
    pub commit_every: u64,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            max_concurrent_pulls: default_concurrency(),
            fallback_poll_secs: None,
            commit_every: default_commit_every(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_window() -> i64 {
    300
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_dedupe_ttl() -> i64 {
    3600
}
fn default_queue() -> usize {
    4096
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_connections() -> usize {
    512
}
fn default_shutdown_grace() -> u64 {
    10
}
fn default_app_path() -> String {
    "/callback/app".into()
}
fn default_command_path() -> String {
    "/callback/suite/command".into()
}
fn default_data_path() -> String {
    "/callback/suite/data".into()
}
fn default_concurrency() -> usize {
    4
}
fn default_commit_every() -> u64 {
    100_000
}
fn default_true() -> bool {
    true
}
fn default_target_file_mb() -> u64 {
    crate::sink::compact::DEFAULT_TARGET_FILE_MB
}

pub(super) fn default_out() -> PathBuf {
    "archive".into()
}
pub(super) fn default_tz() -> String {
    "Asia/Shanghai".into()
}
pub(super) fn default_poll() -> u64 {
    60
}

/// `[app]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// The corpid.
    pub corpid: String,
    /// agentid or label, for messages.
    pub agentid: Option<String>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
    /// File holding the secret.
    pub secret_file: Option<PathBuf>,
}

/// `[suite]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSection {
    /// The suite_id.
    pub suite_id: String,
    /// Environment variable holding the suite_secret.
    pub secret_env: Option<String>,
    /// File holding the suite_secret.
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the latest suite_ticket.
    pub ticket_env: Option<String>,
    /// File holding the latest suite_ticket.
    pub ticket_file: Option<PathBuf>,
}

/// `[provider]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// The provider's own corpid.
    pub corpid: String,
    /// Environment variable holding the provider_secret.
    pub secret_env: Option<String>,
    /// File holding the provider_secret.
    pub secret_file: Option<PathBuf>,
}

/// `[[authcorp]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCorpSection {
    /// The authorized corp's corpid.
    pub corpid: String,
    /// Environment variable holding the permanent_code.
    pub permanent_code_env: Option<String>,
    /// File holding the permanent_code.
    pub permanent_code_file: Option<PathBuf>,
}

/// The auth sections of the configuration, paths resolved ([`super::Config::auth`]), handed to
/// [`crate::auth::context::AuthContext`].
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// API base URL (default the real WeCom host).
    pub api_base: Option<String>,
    /// JSON token store path.
    pub token_store: Option<PathBuf>,
    /// Whole-request timeout in seconds.
    pub timeout_secs: Option<u64>,
    /// `[app]`: self-built app / session archive credential.
    pub app: Option<AppSection>,
    /// Third-party suite credential.
    pub suite: Option<SuiteSection>,
    /// Service provider credential.
    pub provider: Option<ProviderSection>,
    /// Authorized corps of the suite.
    pub authcorp: Vec<AuthCorpSection>,
}

/// `[alerts]`: findings delivered to webhooks (see `docs/compliance.md`, "Alerts").
///
/// ```toml
/// [alerts]
/// min_severity = "warn"              # default of each webhook's filter
/// # send_wait_secs = 30              # pull --once / alerts --send: how long to wait for retries
/// # poll_secs = 5                    # serve / pull --follow: how often due alerts are looked for
///
/// [[alerts.webhook]]
/// name = "compliance-robot"
/// kind = "wecom_robot"               # WeCom group robot (markdown)
/// url_env = "WECOM_ROBOT_URL"        # or url_file = "secrets/robot_url", or url = "…"
/// min_severity = "critical"          # optional; default [alerts] min_severity
///
/// [[alerts.webhook]]
/// name = "siem"
/// kind = "json"                      # {"alerts": [...]}
/// url = "http://127.0.0.1:9000/hook"
/// # batch_max = 100, per_minute = …, max_attempts = 8, backoff_secs = 5,
/// # max_backoff_secs = 3600, timeout_secs = 10
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// The severity a webhook's findings must reach unless it says otherwise.
    #[serde(default = "default_min_severity", deserialize_with = "severity")]
    pub min_severity: Severity,
    /// The webhooks.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookSection>,
    /// `pull --once` and `alerts --send`: the longest wait, seconds, for deliveries to come due
    /// again (retries, the rate limit) before leaving them to the next run.
    #[serde(default = "default_send_wait")]
    pub send_wait_secs: u64,
    /// `serve` and `pull --follow`: seconds between looks for due deliveries.
    #[serde(default = "default_alert_poll")]
    pub poll_secs: u64,
}

/// The format a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// A WeCom group robot: `{"msgtype":"markdown","markdown":{"content":…}}`, accepted when
    /// the answer's `errcode` is 0.
    WecomRobot,
    /// Generic JSON: `{"alerts":[…]}`, accepted on any 2xx.
    Json,
}

impl WebhookKind {
    /// `wecom_robot` or `json`, as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::WecomRobot => "wecom_robot",
            WebhookKind::Json => "json",
        }
    }
}

/// `[[alerts.webhook]]`. Its URL is a secret (a robot's URL holds its key): `url_env`,
/// `url_file` or `url`, exactly one; `Debug` masks an inline `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// A name for logs, the state and `alerts` (unique).
    pub name: String,
    /// The format.
    pub kind: WebhookKind,
    /// Env var holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// The URL itself (for a receiver whose URL carries no key).
    pub url: Option<Secret>,
    /// Only findings at or above this; default `[alerts] min_severity`.
    #[serde(default, deserialize_with = "opt_severity")]
    pub min_severity: Option<Severity>,
    /// Alerts per request, at most 1000 (default 10 for a robot, whose message is also kept
    /// under 4096 bytes; 100 for JSON).
    pub batch_max: Option<usize>,
    /// Requests per minute (default 20 for a robot, WeCom's limit; none for JSON).
    pub per_minute: Option<u32>,
    /// Attempts per alert before it is kept as failed.
    #[serde(default = "default_alert_attempts")]
    pub max_attempts: u32,
    /// The first retry's delay, seconds; doubled per attempt, with jitter.
    #[serde(default = "default_alert_backoff")]
    pub backoff_secs: u64,
    /// The longest delay between attempts, seconds.
    #[serde(default = "default_alert_max_backoff")]
    pub max_backoff_secs: u64,
    /// Whole-request timeout, seconds.
    #[serde(default = "default_alert_timeout")]
    pub timeout_secs: u64,
    /// A webhook added to a configuration that already had others starts with the alerts
    /// stored after it was added; `backfill = true` sends it the whole outbox instead.
    #[serde(default)]
    pub backfill: bool,
}

impl WebhookSection {
    /// Its severity filter, given the section's default.
    pub fn min_severity(&self, section: &AlertsSection) -> Severity {
        self.min_severity.unwrap_or(section.min_severity)
    }

    /// Alerts per request.
    pub fn batch_max(&self) -> usize {
        self.batch_max
            .unwrap_or(match self.kind {
                WebhookKind::WecomRobot => 10,
                WebhookKind::Json => 100,
            })
            .max(1)
    }

    /// Requests per minute (`None`: unlimited).
    pub fn per_minute(&self) -> Option<u32> {
        self.per_minute.or(match self.kind {
            WebhookKind::WecomRobot => Some(20),
            WebhookKind::Json => None,
        })
    }
}

fn parse_severity<E: serde::de::Error>(s: &str) -> Result<Severity, E> {
    Severity::parse(s).ok_or_else(|| {
        E::custom(format!(
            "min_severity {s:?} is not a severity: use info, warn or critical"
        ))
    })
}

fn severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    parse_severity(&String::deserialize(d)?)
}

fn opt_severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Severity>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_severity(&s))
        .transpose()
}

fn default_min_severity() -> Severity {
    Severity::Warn
}
fn default_send_wait() -> u64 {
    30
}
fn default_alert_poll() -> u64 {
    5
}
fn default_alert_attempts() -> u32 {
    8
}
fn default_alert_backoff() -> u64 {
    5
}
fn default_alert_max_backoff() -> u64 {
    3600
}
fn default_alert_timeout() -> u64 {
    10
}
