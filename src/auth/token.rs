//! [`TokenCache`]: one cache entry per credential, with expiry margin, refresh-ahead,
//! single-flight, invalidate-if-same and persistence (spec auth-callback §1.12).
//!
//! * **Expiry margin**: a token is not handed out in its last [`CachePolicy::margin_secs`].
//! * **Refresh-ahead**: during [`CachePolicy::refresh_ahead_secs`] before that, exactly one caller
//!   refreshes while the others keep getting the current, still valid token.
//! * **Single-flight**: a per-key async mutex, with the cache re-read after taking it (the
//!   double-check several SDKs missed), so N concurrent callers on a cold cache make one request.
//! * **Invalidation**: [`TokenCache::invalidate_if_same`] drops the cached token only if it is the
//!   one that failed, so a herd of failing requests does not discard a fresh token.
//! * **Configuration errors latch**: after a configuration error (bad secret, …) the entry answers
//!   with the same error and never calls WeCom again; a new secret gives a new key. (40085, a
//!   stale suite_ticket, is handled by [`SuiteToken`](crate::auth::providers::SuiteToken)
//!   instead: the next push fixes it.)
//! * **Persistence**: every fetched token is saved through a [`TokenStore`]; after a restart a
//!   still-valid stored token is used instead of fetching.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::api::error::ApiError;
use crate::clock::Clock;
use crate::secret::Secret;

/// A token with its absolute expiry, as kept in a [`TokenStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token.
    pub value: Secret,
    /// Unix time at which WeCom stops accepting it (obtained time + `expires_in`).
    pub expires_at_unix: i64,
}

/// A token as returned by a fetch: value and `expires_in` seconds.
#[derive(Debug, Clone)]
pub struct FetchedToken {
    /// The token.
    pub value: Secret,
    /// Lifetime in seconds, normally 7200.
    pub expires_in: i64,
}

/// Persistence of tokens across restarts (and, with a shared store, across processes).
///
/// The SQLite state store implements it too; [`MemoryTokenStore`] and [`JsonFileTokenStore`] are
/// the built-in implementations.
pub trait TokenStore: Send + Sync {
    /// The stored token for `key`, if any (expired or not: the cache decides).
    fn load(&self, key: &str) -> Option<StoredToken>;
    /// Stores `token` under `key`. A shared store keeps whichever token expires later, so an
    /// older response cannot overwrite a newer token written by another process.
    fn save(&self, key: &str, token: &StoredToken);
    /// Forgets `key`, but only if the stored token is still `rejected` (WeCom rejected it): a
    /// newer token stored meanwhile is kept.
    fn remove(&self, key: &str, rejected: &Secret);
    /// Keeps every other process sharing this store from fetching `key` until the returned
    /// guard drops; `None` when the store is not shared between processes. Blocking. No
    /// default: a store that wraps another must pass the lock on.
    fn lock_fetch(&self, key: &str) -> Option<Box<dyn std::any::Any + Send>>;
}

/// A [`TokenStore`] in memory only.
#[derive(Debug, Default)]
pub struct MemoryTokenStore(Mutex<HashMap<String, StoredToken>>);

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self, key: &str) -> Option<StoredToken> {
        self.0
            .lock()
            .expect("token store poisoned")
            .get(key)
            .cloned()
    }
    fn save(&self, key: &str, token: &StoredToken) {
        let mut map = self.0.lock().expect("token store poisoned");
        if map
            .get(key)
            .is_none_or(|t| t.expires_at_unix <= token.expires_at_unix)
        {
            map.insert(key.to_owned(), token.clone());
        }
    }
    fn remove(&self, key: &str, rejected: &Secret) {
        let mut map = self.0.lock().expect("token store poisoned");
        if map.get(key).is_some_and(|t| &t.value == rejected) {
            map.remove(key);
        }
    }
    fn lock_fetch(&self, _key: &str) -> Option<Box<dyn std::any::Any + Send>> {
        // In memory: one process.
        None
    }
}

/// A [`TokenStore`] in one JSON file (`{"key": {"value": "...", "expires_at_unix": 123}}`),
/// written atomically (temporary file, fsync, rename) with mode 0600.
///
/// Every operation re-reads the file, so CLI runs in parallel see each other's tokens and do not
/// drop each other's keys (a read-modify-write race between two processes can still lose one
/// write; that costs one extra token fetch, never a wrong token). For many processes use the
/// state store.
#[derive(Debug)]
pub struct JsonFileTokenStore {
    path: PathBuf,
    /// Serialises this process's read-modify-write cycles.
    lock: Mutex<()>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileEntry {
    value: String,
    expires_at_unix: i64,
}

impl JsonFileTokenStore {
    /// A store at `path` (created on the first save). An unreadable or corrupt file is treated
    /// as empty: tokens can always be fetched again.
    pub fn open(path: impl Into<PathBuf>) -> Self {
        JsonFileTokenStore {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> HashMap<String, StoredToken> {
        let Ok(mut bytes) = fs::read(&self.path) else {
            return HashMap::new();
        };
        let parsed = serde_json::from_slice::<HashMap<String, FileEntry>>(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        match parsed {
            Ok(entries) => entries
                .into_iter()
                .map(|(k, e)| {
                    (
                        k,
                        StoredToken {
                            value: Secret::new(e.value),
                            expires_at_unix: e.expires_at_unix,
                        },
                    )
                })
                .collect(),
            Err(_) => {
                tracing::warn!(path = %self.path.display(), "token store is not valid JSON; treating it as empty");
                HashMap::new()
            }
        }
    }

    fn persist(&self, map: &HashMap<String, StoredToken>) {
        if let Err(e) = write_atomic_0600(&self.path, map) {
            // A failed write costs one extra token fetch after a restart, no more.
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write token store");
        }
    }
}

fn write_atomic_0600(path: &Path, map: &HashMap<String, StoredToken>) -> std::io::Result<()> {
    let entries: HashMap<&str, FileEntry> = map
        .iter()
        .map(|(k, t)| {
            (
                k.as_str(),
                FileEntry {
                    value: t.value.expose().to_owned(),
                    expires_at_unix: t.expires_at_unix,
                },
            )
        })
        .collect();
    let mut bytes = serde_json::to_vec_pretty(&entries).map_err(std::io::Error::other)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = dir {
            // Make the rename durable too.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    zeroize::Zeroize::zeroize(&mut bytes);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl TokenStore for JsonFileTokenStore {
    fn load(&self, key: &str) -> Option<StoredToken> {
        let _guard = self.lock.lock().expect("token store poisoned");
        self.read().remove(key)
    }
    fn save(&self, key: &str, token: &StoredToken) {
        let _guard = self.lock.lock().expect("token store poisoned");
        let mut map = self.read();
        if map
            .get(key)
            .is_some_and(|t| t.expires_at_unix > token.expires_at_unix)
        {
            return;
        }
        map.insert(key.to_owned(), token.clone());
        self.persist(&map);
    }
    fn remove(&self, key: &str, rejected: &Secret) {
        let _guard = self.lock.lock().expect("token store poisoned");
        let mut map = self.read();
        if map.get(key).is_some_and(|t| &t.value == rejected) {
            map.remove(key);
            self.persist(&map);
        }
    }
    fn lock_fetch(&self, _key: &str) -> Option<Box<dyn std::any::Any + Send>> {
        // The one-shot commands' file: no lock between processes (as before).
        None
    }
}

/// Timing of a [`TokenCache`].
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// A token is treated as expired this many seconds before its real expiry (clock skew,
    /// request latency). WxJava uses 200 s.
    pub margin_secs: i64,
    /// Before the margin, a window of this many seconds in which one caller refreshes while the
    /// others are still served the current token.
    pub refresh_ahead_secs: i64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            margin_secs: 300,
            refresh_ahead_secs: 600,
        }
    }
}

/// The state of a token as seen by the cache, for `wecom-archive token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Served from memory.
    Memory,
    /// Loaded from the [`TokenStore`] (e.g. after a restart).
    Store,
    /// Fetched from WeCom just now.
    Fetched,
}

#[derive(Default)]
struct Slot {
    current: RwLock<Option<StoredToken>>,
    /// Held by the one caller fetching for this key.
    flight: tokio::sync::Mutex<()>,
    /// A configuration error seen for this key: answered from here, never refetched.
    config_error: Mutex<Option<ApiError>>,
}

/// A cache of tokens, one entry per credential key. See the module docs.
pub struct TokenCache {
    clock: Arc<dyn Clock>,
    store: Arc<dyn TokenStore>,
    policy: CachePolicy,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("policy", &self.policy)
            .field("entries", &self.slots.lock().map(|s| s.len()).unwrap_or(0))
            .finish()
    }
}

impl TokenCache {
    /// A cache on `store`, deciding expiry with `clock`.
    pub fn new(clock: Arc<dyn Clock>, store: Arc<dyn TokenStore>, policy: CachePolicy) -> Self {
        TokenCache {
            clock,
            store,
            policy,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The cache's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .expect("token cache poisoned")
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// Usable: not within the expiry margin.
    fn usable(&self, t: &StoredToken, now: i64) -> bool {
        now < t.expires_at_unix - self.policy.margin_secs
    }

    /// Usable but within the refresh-ahead window.
    fn due(&self, t: &StoredToken, now: i64) -> bool {
        now >= t.expires_at_unix - self.policy.margin_secs - self.policy.refresh_ahead_secs
    }

    /// A valid token for `key`, calling `fetch` only when needed and only from one caller.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<Secret, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, ApiError>>,
    {
        self.get_with_origin(key, fetch).await.map(|(t, _)| t.value)
    }

    /// Like [`TokenCache::get`], also telling where the token came from and when it expires.
    pub async fn get_with_origin<F, Fut>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<(StoredToken, TokenOrigin), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, ApiError>>,
    {
        let slot = self.slot(key);
        let now = self.clock.now_unix();
        let current = slot.current.read().expect("poisoned").clone();
        if let Some(t) = current.filter(|t| self.usable(t, now)) {
            // A latched configuration error stops refreshes, not the use of a still-valid token.
            if !self.due(&t, now) || slot.config_error.lock().expect("poisoned").is_some() {
                return Ok((t, TokenOrigin::Memory));
            }
            // Refresh-ahead: one caller refreshes; everyone else keeps the current token.
            let Ok(_guard) = slot.flight.try_lock() else {
                return Ok((t, TokenOrigin::Memory));
            };
            let latest = slot.current.read().expect("poisoned").clone();
            if let Some(l) = latest.filter(|l| !self.due(l, now)) {
                return Ok((l, TokenOrigin::Memory));
            }
            // Another process sharing the store may have refreshed already.
            if let Some(l) = self.store.load(key).filter(|l| !self.due(l, now)) {
                *slot.current.write().expect("poisoned") = Some(l.clone());
                return Ok((l, TokenOrigin::Store));
            }
            // Across processes too: one refreshes, and the others find its token after it.
            let _fleet = self.lock_fetch(key).await;
            if let Some(l) = self.store.load(key).filter(|l| !self.due(l, now)) {
                *slot.current.write().expect("poisoned") = Some(l.clone());
                return Ok((l, TokenOrigin::Store));
            }
            return match self.fetch_and_store(key, &slot, fetch).await {
                Ok(fresh) => Ok((fresh, TokenOrigin::Fetched)),
                Err(e) => {
                    tracing::warn!(error = %e, "refresh-ahead failed; serving the current token");
                    Ok((t, TokenOrigin::Memory))
                }
            };
        }
        if let Some(e) = slot.config_error.lock().expect("poisoned").as_ref() {
            return Err(e.duplicate());
        }

        // No usable token: single-flight fetch.
        let _guard = slot.flight.lock().await;
        // Double-check: the caller before us may have fetched, or latched an error.
        if let Some(e) = slot.config_error.lock().expect("poisoned").as_ref() {
            return Err(e.duplicate());
        }
        let now = self.clock.now_unix();
        if let Some(t) = slot.current.read().expect("poisoned").clone() {
            if self.usable(&t, now) {
                return Ok((t, TokenOrigin::Memory));
            }
        }
        if let Some(t) = self.store.load(key) {
            if self.usable(&t, now) {
                *slot.current.write().expect("poisoned") = Some(t.clone());
                return Ok((t, TokenOrigin::Store));
            }
        }
        // Across processes too: one fetches, and the others find its token after it.
        let _fleet = self.lock_fetch(key).await;
        if let Some(t) = self.store.load(key).filter(|t| self.usable(t, now)) {
            *slot.current.write().expect("poisoned") = Some(t.clone());
            return Ok((t, TokenOrigin::Store));
        }
        let fresh = self.fetch_and_store(key, &slot, fetch).await?;
        Ok((fresh, TokenOrigin::Fetched))
    }

    /// The store's cross-process fetch lock for `key` (see [`TokenStore::lock_fetch`]), waited
    /// for off the async threads.
    async fn lock_fetch(&self, key: &str) -> Option<Box<dyn std::any::Any + Send>> {
        let store = self.store.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || store.lock_fetch(&key))
            .await
            .ok()
            .flatten()
    }

    async fn fetch_and_store<F, Fut>(
        &self,
        key: &str,
        slot: &Slot,
        fetch: F,
    ) -> Result<StoredToken, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, ApiError>>,
    {
        match fetch().await {
            Ok(f) => {
                let t = StoredToken {
                    value: f.value,
                    expires_at_unix: self.clock.now_unix() + f.expires_in,
                };
                self.store.save(key, &t);
                *slot.current.write().expect("poisoned") = Some(t.clone());
                Ok(t)
            }
            Err(e) => {
                if e.latches() {
                    *slot.config_error.lock().expect("poisoned") = Some(e.duplicate());
                }
                Err(e)
            }
        }
    }

    /// Drops the token for `key` if it is still `rejected` (in memory and in the store). A newer
    /// token fetched meanwhile by another caller is kept.
    pub fn invalidate_if_same(&self, key: &str, rejected: &Secret) {
        let slot = self.slot(key);
        let mut current = slot.current.write().expect("poisoned");
        if current.as_ref().is_some_and(|t| &t.value == rejected) {
            *current = None;
        }
        // The store compares too: a newer token saved meanwhile (by any process) stays.
        self.store.remove(key, rejected);
    }

    /// Forgets a latched configuration error for `key` (after the operator fixed the setup).
    pub fn clear_error(&self, key: &str) {
        *self.slot(key).config_error.lock().expect("poisoned") = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::CallContext;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn cache(clock: &Arc<ManualClock>, store: Arc<dyn TokenStore>) -> TokenCache {
        TokenCache::new(clock.clone(), store, CachePolicy::default())
    }

    async fn counted(n: &AtomicU32, value: &str) -> Result<FetchedToken, ApiError> {
        n.fetch_add(1, Ordering::SeqCst);
        Ok(FetchedToken {
            value: Secret::new(value),
            expires_in: 7200,
        })
    }

    #[tokio::test]
    async fn caches_until_the_margin_then_refetches() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let c = cache(&clock, Arc::new(MemoryTokenStore::new()));
        let n = AtomicU32::new(0);
        assert_eq!(
            c.get("k", || counted(&n, "t1")).await.unwrap().expose(),
            "t1"
        );
        assert_eq!(
            c.get("k", || counted(&n, "t2")).await.unwrap().expose(),
            "t1"
        );
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // Past expiry − margin: a new token.
        clock.advance(7200 - 300);
        assert_eq!(
            c.get("k", || counted(&n, "t3")).await.unwrap().expose(),
            "t3"
        );
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refresh_ahead_fetches_once_inside_the_window() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let c = cache(&clock, Arc::new(MemoryTokenStore::new()));
        let n = AtomicU32::new(0);
        c.get("k", || counted(&n, "t1")).await.unwrap();
        clock.advance(7200 - 300 - 600 + 1);
        assert_eq!(
            c.get("k", || counted(&n, "t2")).await.unwrap().expose(),
            "t2"
        );
        assert_eq!(
            c.get("k", || counted(&n, "t3")).await.unwrap().expose(),
            "t2"
        );
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_refresh_ahead_keeps_serving_the_valid_token() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let c = cache(&clock, Arc::new(MemoryTokenStore::new()));
        let n = AtomicU32::new(0);
        c.get("k", || counted(&n, "t1")).await.unwrap();
        clock.advance(7200 - 300 - 10);
        let got = c
            .get("k", || async {
                Err(ApiError::Busy {
                    ctx: CallContext::new("ww", None, "/cgi-bin/gettoken"),
                    attempts: 4,
                })
            })
            .await
            .unwrap();
        assert_eq!(got.expose(), "t1");
    }

    #[tokio::test]
    async fn config_error_during_refresh_ahead_keeps_the_valid_token_then_fails() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let c = cache(&clock, Arc::new(MemoryTokenStore::new()));
        let n = AtomicU32::new(0);
        c.get("k", || counted(&n, "t1")).await.unwrap();
        clock.advance(7200 - 300 - 10);
        let bad_secret = || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err::<FetchedToken, _>(ApiError::Config {
                ctx: CallContext::new("ww", None, "/cgi-bin/gettoken"),
                code: 40001,
                errmsg: "invalid credential".into(),
                hint: "check the secret".into(),
            })
        };
        // The secret was revoked: the refresh fails, the current token is still served, and
        // the refresh is not attempted again.
        assert_eq!(c.get("k", bad_secret).await.unwrap().expose(), "t1");
        assert_eq!(c.get("k", bad_secret).await.unwrap().expose(), "t1");
        assert_eq!(n.load(Ordering::SeqCst), 2);
        // Once the token expires, the latched error is returned without a request.
        clock.advance(10);
        assert_eq!(
            c.get("k", bad_secret).await.unwrap_err().errcode(),
            Some(40001)
        );
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn invalidate_only_if_same() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = Arc::new(MemoryTokenStore::new());
        let c = cache(&clock, store.clone());
        let n = AtomicU32::new(0);
        c.get("k", || counted(&n, "t1")).await.unwrap();
        c.invalidate_if_same("k", &Secret::new("older"));
        assert_eq!(
            c.get("k", || counted(&n, "t2")).await.unwrap().expose(),
            "t1"
        );
        c.invalidate_if_same("k", &Secret::new("t1"));
        assert!(store.load("k").is_none());
        assert_eq!(
            c.get("k", || counted(&n, "t2")).await.unwrap().expose(),
            "t2"
        );
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn config_errors_latch() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let c = cache(&clock, Arc::new(MemoryTokenStore::new()));
        let n = AtomicU32::new(0);
        for _ in 0..3 {
            let e = c
                .get("k", || async {
                    n.fetch_add(1, Ordering::SeqCst);
                    Err::<FetchedToken, _>(ApiError::Config {
                        ctx: CallContext::new("ww", None, "/cgi-bin/gettoken"),
                        code: 40001,
                        errmsg: "invalid credential".into(),
                        hint: "check the secret".into(),
                    })
                })
                .await
                .unwrap_err();
            assert_eq!(e.errcode(), Some(40001));
        }
        assert_eq!(n.load(Ordering::SeqCst), 1);
        c.clear_error("k");
        assert_eq!(
            c.get("k", || counted(&n, "t1")).await.unwrap().expose(),
            "t1"
        );
    }

    #[test]
    fn json_file_store_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tokens.json");
        let s = JsonFileTokenStore::open(&path);
        let t = StoredToken {
            value: Secret::new("tok-1"),
            expires_at_unix: 42,
        };
        s.save("corp|ww|abc", &t);
        let again = JsonFileTokenStore::open(&path);
        assert_eq!(again.load("corp|ww|abc"), Some(t));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Removal only if the stored token is the rejected one.
        again.remove("corp|ww|abc", &Secret::new("some-other-token"));
        assert!(again.load("corp|ww|abc").is_some());
        again.remove("corp|ww|abc", &Secret::new("tok-1"));
        assert!(JsonFileTokenStore::open(&path)
            .load("corp|ww|abc")
            .is_none());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn json_file_stores_share_the_file_and_keep_the_later_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        // Two "processes" with their own store objects on one file.
        let a = JsonFileTokenStore::open(&path);
        let b = JsonFileTokenStore::open(&path);
        let tok = |v: &str, exp| StoredToken {
            value: Secret::new(v),
            expires_at_unix: exp,
        };
        a.save("corp", &tok("a-corp", 100));
        b.save("suite", &tok("b-suite", 100));
        // Neither write dropped the other's key.
        assert_eq!(a.load("suite"), Some(tok("b-suite", 100)));
        assert_eq!(b.load("corp"), Some(tok("a-corp", 100)));
        // An older response does not overwrite a newer token.
        b.save("corp", &tok("b-corp-new", 200));
        a.save("corp", &tok("a-corp-old", 150));
        assert_eq!(a.load("corp"), Some(tok("b-corp-new", 200)));
    }

    #[test]
    fn stored_token_debug_hides_the_value() {
        let t = StoredToken {
            value: Secret::new("tok-very-secret"),
            expires_at_unix: 1,
        };
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
