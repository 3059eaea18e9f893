//! Authorization: the credentials WeCom APIs need. Credentials and tokens are held in a
//! [`Secret`]; expiry is decided on an injectable [`crate::clock::Clock`].
//!
//! * [`token`]: [`TokenCache`](token::TokenCache) — expiry margin, refresh-ahead, single-flight,
//!   invalidation, persistence through a [`TokenStore`](token::TokenStore);
//! * [`providers`]: corp `access_token`, `suite_access_token`, `provider_access_token` and the
//!   authorized-corp token, each a [`TokenProvider`];
//! * [`oauth`]: member OAuth2 URLs, code exchange, QR login, WeCom browser detection;
//! * [`context`]: the client, token cache and providers built from the auth sections of the
//!   configuration ([`crate::config`]).

pub mod context;
pub mod oauth;
pub mod providers;
pub mod token;

use std::future::Future;
use std::pin::Pin;

use crate::api::error::ApiError;
use crate::secret::Secret;

/// A boxed, sendable future (object-safe async trait methods without an extra crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that hands out a valid token of one credential, e.g. a corp app's `access_token`.
///
/// The built-in implementations in [`providers`] cache through a [`token::TokenCache`]; a
/// deployment with many instances can plug in a central token service ("中控") instead.
pub trait TokenProvider: Send + Sync {
    /// A valid token (cached, or fetched by exactly one caller at a time).
    fn token(&self) -> BoxFuture<'_, Result<Secret, ApiError>>;
    /// Called when WeCom rejected `rejected`: drop it if it is still the cached token.
    fn invalidate(&self, rejected: &Secret);
    /// The corpid / suite_id the credential belongs to (for error messages).
    fn corp(&self) -> &str;
    /// The app the credential belongs to (agentid or label), when known.
    fn app(&self) -> Option<&str> {
        None
    }
}
