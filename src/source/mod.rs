//! Where encrypted records come from.
//!
//! * [`sdk`]: the official `libWeWorkFinanceSdk_C.so`, run in a child process (`GetChatData`,
//!   `GetMediaData`).
//! * [`file`]: `GetChatData` dumps and JSON Lines, plain or gzip, or stdin.
//! * [`sim`]: a deterministic simulator of a corp's archive, encrypted exactly as WeCom does.
//! * [`dead_letters`]: committed dead letters, to re-run them.
//!
//! * [`media`]: where media bytes come from: the [`media::MediaSource`] trait (one
//!   `GetMediaData` call) and the simulator's media.
//!
//! Every [`Source`] answers the same question as `GetChatData`: "the records after this seq".

pub mod dead_letters;
pub mod file;
pub mod media;
pub mod sdk;
pub mod sim;

use crate::model::record::EncryptedRecord;
pub use file::{InputError, Rejected};

/// `GetChatData` never returns more than this many records per call.
pub const MAX_PAGE: u32 = 1000;

/// One entry of a page: a record, or an entry that is not one (kept for the dead letters).
pub type Item = Result<EncryptedRecord, Rejected>;

/// One page of records, in seq order.
#[derive(Debug, Default)]
pub struct Page {
    /// The entries of the page.
    pub items: Vec<Item>,
}

impl Page {
    /// The cursor for the next call: the highest seq of the page, or `after` for an empty page.
    pub fn next_cursor(&self, after: u64) -> u64 {
        self.seqs().fold(after, u64::max)
    }

    /// The cursor for the next call of `corp_id`'s pull, which asked for the records after
    /// `after`; or, for a page that is not empty yet holds nothing after the cursor, why asking
    /// again is pointless: a cursor-driven source would answer the same page forever.
    pub fn advance(&self, corp_id: &str, after: u64) -> Result<u64, Stalled> {
        let next = self.next_cursor(after);
        if next > after || self.items.is_empty() {
            return Ok(next);
        }
        Err(Stalled {
            corp_id: corp_id.to_owned(),
            after,
            entries: self.items.len(),
            highest: self.seqs().max(),
            without_seq: self.items.len() - self.seqs().count(),
        })
    }

    fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.items.iter().filter_map(|i| match i {
            Ok(r) => Some(r.seq),
            Err(r) => r.error.seq,
        })
    }
}

/// A page that does not move the cursor: it holds entries, but none with a seq after the one
/// asked for (only entries at or below it, or entries without a seq). The pull stops here
/// rather than asking for the same records again and again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "corp {corp_id}: GetChatData after seq {after} returned {entries} records, none after the \
     cursor ({}): stopping instead of asking again",
    stalled_detail(*highest, *without_seq)
)]
pub struct Stalled {
    /// The corp.
    pub corp_id: String,
    /// The cursor asked for.
    pub after: u64,
    /// Entries in the page.
    pub entries: usize,
    /// The highest seq among them, if any has one.
    pub highest: Option<u64>,
    /// Entries without a seq.
    pub without_seq: usize,
}

fn stalled_detail(highest: Option<u64>, without_seq: usize) -> String {
    match (highest, without_seq) {
        (Some(h), 0) => format!("highest seq {h}"),
        (Some(h), n) => format!("highest seq {h}, {n} without a seq"),
        (None, _) => "none has a seq".to_owned(),
    }
}

/// Why a source could not deliver a page. Bad records are not errors: they ride in the page.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A dump could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The official SDK failed (after its retries).
    #[error(transparent)]
    Sdk(#[from] sdk::SdkError),
    /// A page did not move the cursor.
    #[error(transparent)]
    Stalled(#[from] Stalled),
}

/// A cursor-driven source of encrypted records, like `GetChatData`.
pub trait Source: Send {
    /// A short description for logs and summaries (never a secret).
    fn describe(&self) -> String;

    /// Up to `limit` (≤ [`MAX_PAGE`]) entries with seq greater than `after`, in seq order. An
    /// empty page means "caught up for now".
    fn fetch(&mut self, after: u64, limit: u32) -> Result<Page, SourceError>;

    /// Whether the answer depends on `after`, as `GetChatData`'s does. Then a page that does
    /// not move the cursor ([`Page::advance`]) would come back at every call, and the pipeline
    /// stops the run. Sources that read a finite input front to back whatever the cursor
    /// (dumps, dead letters) answer false: they may hold entries out of order or without a seq.
    fn follows_cursor(&self) -> bool {
        true
    }
}

/// A dump file as a [`Source`]: read front to back, in file order. Entries at or below the
/// cursor of the *first* fetch (a resumed run's checkpoint) are skipped; later cursors are
/// ignored, so a dump that is not sorted by seq still yields every entry.
pub struct DumpSource {
    reader: file::DumpReader,
    name: String,
    floor: Option<u64>,
}

impl DumpSource {
    /// Wraps an opened dump.
    pub fn new(reader: file::DumpReader, name: impl Into<String>) -> Self {
        DumpSource {
            reader,
            name: name.into(),
            floor: None,
        }
    }
}

impl Source for DumpSource {
    fn describe(&self) -> String {
        format!("dump {}", self.name)
    }

    fn follows_cursor(&self) -> bool {
        false
    }

    fn fetch(&mut self, after: u64, limit: u32) -> Result<Page, SourceError> {
        let floor = *self.floor.get_or_insert(after);
        let mut items = Vec::with_capacity(limit as usize);
        while items.len() < limit as usize {
            let Some(item) = self.reader.next() else {
                break;
            };
            let item = item?;
            let seq = match &item {
                Ok(r) => Some(r.seq),
                Err(r) => r.error.seq,
            };
            if floor > 0 && seq.is_some_and(|s| s <= floor) {
                continue;
            }
            items.push(item);
        }
        Ok(Page { items })
    }
}

/// Why a corp's source could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is incomplete or wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A private key could not be loaded.
    #[error("corp {corp_id}: loading the key for publickey_ver {version}: {source}")]
    Key {
        /// The corp.
        corp_id: String,
        /// The key version.
        version: u32,
        /// Why.
        source: crate::crypto::unwrap::KeyLoadError,
    },
}

/// The source and the keyring of one configured corp: the official SDK with the corp's keys,
/// or the simulator with its built-in keys.
pub fn for_corp(
    config: &crate::config::Config,
    corp: &crate::config::CorpSection,
) -> Result<(Box<dyn Source>, crate::crypto::keyring::Keyring), SetupError> {
    use crate::config::SourceKind;
    use crate::crypto::unwrap::Backend;
    match corp.source {
        SourceKind::Sim => {
            let keyring =
                sim::demo_keyring(Backend::default()).map_err(|source| SetupError::Key {
                    corp_id: corp.corp_id.clone(),
                    version: 1,
                    source,
                })?;
            let sim = sim::SimSource::new(sim::SimConfig {
                messages: corp.sim_messages.unwrap_or(10_000),
                ..sim::SimConfig::default()
            });
            Ok((Box::new(sim), keyring))
        }
        SourceKind::Sdk => {
            let mut keyring = crate::crypto::keyring::Keyring::new(Backend::default());
            for (version, path) in config.keys(corp) {
                keyring
                    .add_pem_file(version, &path)
                    .map_err(|source| SetupError::Key {
                        corp_id: corp.corp_id.clone(),
                        version,
                        source,
                    })?;
            }
            Ok((
                Box::new(sdk::SdkSource::new(sdk_config(config, corp)?)),
                keyring,
            ))
        }
    }
}

/// How to reach `corp` through the SDK, from the configuration.
fn sdk_config(
    config: &crate::config::Config,
    corp: &crate::config::CorpSection,
) -> Result<sdk::SdkConfig, SetupError> {
    let library = config.sdk_library()?;
    let mut sdk = sdk::SdkConfig::new(library, corp.corp_id.clone(), config.secret(corp)?);
    sdk.proxy = config.sdk.proxy.clone();
    sdk.proxy_password = config.proxy_password()?;
    if let Some(t) = config.sdk.timeout_secs {
        sdk.timeout_secs = t;
    }
    if let Some(n) = config.sdk.max_attempts {
        sdk.max_attempts = n.max(1);
    }
    Ok(sdk)
}

/// The media source (`GetMediaData`) of one configured corp: the SDK in its own worker process,
/// or the simulator's media. Call once per download worker.
pub fn media_for_corp(
    config: &crate::config::Config,
    corp: &crate::config::CorpSection,
) -> Result<Box<dyn media::MediaSource>, SetupError> {
    use crate::config::SourceKind;
    match corp.source {
        SourceKind::Sim => Ok(Box::new(media::SimMediaSource::default())),
        SourceKind::Sdk => Ok(Box::new(sdk::SdkSource::new(sdk_config(config, corp)?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{RecordError, RecordErrorKind};

    fn rec(seq: u64) -> Item {
        Ok(EncryptedRecord {
            seq,
            msgid: format!("m{seq}"),
            publickey_ver: 1,
            encrypt_random_key: String::new(),
            encrypt_chat_msg: String::new(),
        })
    }

    fn no_seq() -> Item {
        Err(Rejected {
            error: RecordError {
                seq: None,
                msgid: Some("x".into()),
                line: None,
                kind: RecordErrorKind::Malformed("missing field `seq`".into()),
            },
            raw: "{}".into(),
        })
    }

    #[test]
    fn a_page_advances_when_one_entry_is_after_the_cursor() {
        let page = Page {
            items: vec![rec(1199), no_seq(), rec(1201)],
        };
        assert_eq!(page.advance("ww1", 1200), Ok(1201));
        assert_eq!(Page::default().advance("ww1", 1200), Ok(1200));
    }

    #[test]
    fn a_page_that_does_not_move_the_cursor_says_what_it_held() {
        let page = Page {
            items: vec![rec(1198), rec(1200), rec(1200)],
        };
        let e = page.advance("ww1", 1200).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corp ww1: GetChatData after seq 1200 returned 3 records, none after the cursor \
             (highest seq 1200): stopping instead of asking again"
        );
        let page = Page {
            items: vec![no_seq(), no_seq()],
        };
        let e = page.advance("ww1", 0).unwrap_err();
        assert!(e
            .to_string()
            .contains("2 records, none after the cursor (none has a seq)"));
        let page = Page {
            items: vec![rec(7), no_seq()],
        };
        let e = page.advance("ww1", 9).unwrap_err();
        assert!(
            e.to_string().contains("(highest seq 7, 1 without a seq)"),
            "{e}"
        );
    }
}
