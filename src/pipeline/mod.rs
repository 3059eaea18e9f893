//! Moves records from a [`Source`] through the parallel decrypt to the sinks.
//!
//! ```text
//! fetch thread ──chunks──▶ decrypt (rayon, order kept) ──chunks──▶ writer thread
//!  (pages after the cursor,   bounded   (unwrap, DecryptData, parse,   bounded  (Arrow, Parquet,
//!   dedupe by seq and msgid)             screen with the rules)                 findings, dead
//!                                                                              letters, commit)
//! ```
//!
//! The channels are bounded, so memory stays flat whatever the archive size, and fetching and
//! writing overlap with decryption. Output order is seq order.
//!
//! A run commits every [`RunOptions::commit_every`] records: the open Parquet files and dead
//! letters are fsynced, journaled in the state store, renamed, and only then the checkpoint moves
//! (see [`crate::state`]). A crash at any point loses nothing and duplicates nothing.

pub mod progress;
pub mod transform;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;

use crate::compliance::findings::{findings_schema, FindingsBatchBuilder};
use crate::compliance::rules::{RuleSet, Severity};
use crate::crypto::keyring::Keyring;
use crate::error::RecordError;
use crate::model::record::EncryptedRecord;
use crate::model::schema::ChatBatchBuilder;
use crate::sink::dead_letter::{DeadLetter, DeadLetterSink};
use crate::sink::delta::{DeltaError, DeltaTables, DeltaTarget};
use crate::sink::layout;
use crate::sink::parquet::{CommittedPart, ParquetOptions, ParquetSink, SinkError};
use crate::source::{Item, Rejected, Source, SourceError, MAX_PAGE};
use crate::state::{JournalExtras, NewAlert, Rename, Screened, StateError, StateStore};
use transform::{decode, Decoded};

/// How rows are laid out under the output root (the names are [`layout`]'s).
#[derive(Debug, Clone)]
pub enum Layout {
    /// No partitions: `messages/part-….parquet` and `dead_letters/dead-….jsonl` (`decrypt`).
    Flat,
    /// Hive partitions `messages/corp_id=<corp>/date=<YYYY-MM-DD>/part-….parquet`, the date of
    /// `msgtime` in `tz`; dead letters under `dead_letters/corp_id=<corp>/`.
    Hive {
        /// The corp (also the checkpoint key).
        corp_id: String,
        /// Time zone of the `date=` partition.
        tz: jiff::tz::TimeZone,
    },
}

impl Layout {
    /// The folder of this layout's dead letters under the output root `out`.
    pub fn dead_letter_dir(&self, out: &Path) -> PathBuf {
        match self {
            Layout::Flat => layout::dead_letters_root(out),
            Layout::Hive { corp_id, .. } => layout::corp_dead_letters(out, corp_id),
        }
    }

    /// The folder of this layout's findings under the output root `out`.
    pub fn findings_dir(&self, out: &Path) -> PathBuf {
        match self {
            Layout::Flat => layout::findings_root(out),
            Layout::Hive { corp_id, .. } => layout::corp_findings(out, corp_id),
        }
    }

    /// The folder of this layout's message files under the output root `out`.
    pub fn messages_dir(&self, out: &Path) -> PathBuf {
        match self {
            Layout::Flat => layout::messages_root(out),
            Layout::Hive { corp_id, .. } => layout::corp_messages(out, corp_id),
        }
    }

    /// The partition (relative directory) of a row, and the range of `msgtime` (ms,
    /// half-open) that shares it: the local day in `tz`.
    fn partition(&self, msgtime_ms: Option<i64>) -> (String, Option<(i64, i64)>) {
        match self {
            Layout::Flat => (String::new(), None),
            Layout::Hive { corp_id, tz } => {
                let zoned = msgtime_ms
                    .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                    .map(|t| t.to_zoned(tz.clone()));
                let Some(zoned) = zoned else {
                    return (layout::partition(corp_id, None), None);
                };
                let day = (|| {
                    let start = zoned.start_of_day().ok()?;
                    let end = zoned.tomorrow().ok()?.start_of_day().ok()?;
                    Some((
                        start.timestamp().as_millisecond(),
                        end.timestamp().as_millisecond(),
                    ))
                })();
                (layout::partition(corp_id, Some(zoned.date())), day)
            }
        }
    }
}

/// The partition of the last row and the `msgtime` range it covers: rows arrive in seq order,
/// so nearly every row falls in the same local day as the one before, and its partition is
/// found without a time-zone conversion or an allocation.
#[derive(Default)]
struct PartitionCache {
    day: Option<(i64, i64)>,
    key: String,
}

impl PartitionCache {
    fn key(&mut self, layout: &Layout, msgtime_ms: Option<i64>) -> &str {
        let hit = matches!((self.day, msgtime_ms), (Some((a, z)), Some(t)) if a <= t && t < z);
        if !hit {
            let (key, day) = layout.partition(msgtime_ms);
            self.key = key;
            self.day = day;
        }
        &self.key
    }
}

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Records decrypted together (one rayon fan-out).
    pub chunk_records: usize,
    /// Chunks in flight between stages.
    pub queue_chunks: usize,
    /// Records per `GetChatData` call (≤ 1000).
    pub page_size: u32,
    /// Records between commits (each commit closes the open files and moves the checkpoint).
    pub commit_every: u64,
    /// Parquet settings.
    pub parquet: ParquetOptions,
    /// How often progress is reported.
    pub progress_every: Duration,
    /// Msgids remembered for the duplicate guard.
    pub dedupe_window: usize,
    /// The rules screening every message (findings table); `None`: no rules configured.
    pub rules: Option<Arc<RuleSet>>,
    /// Findings at or above this severity become alerts in the state's outbox, stored with
    /// their commit; `None`: no webhooks configured (or no state).
    pub alert_min: Option<Severity>,
    /// Dead-letter files being re-run (`retry-dead-letters`). When not empty, records at or
    /// below the checkpoint are expected rather than duplicates, and the final commit retires
    /// these files in the same journaled step that publishes what replaced them.
    pub replaying: Vec<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            chunk_records: 2048,
            queue_chunks: 4,
            page_size: MAX_PAGE,
            commit_every: 100_000,
            parquet: ParquetOptions::default(),
            progress_every: Duration::from_millis(500),
            dedupe_window: 200_000,
            rules: None,
            alert_min: None,
            replaying: Vec::new(),
        }
    }
}

/// Counts of a run, reported as progress and as the final summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Entries received from the source (records and malformed entries).
    pub records_in: u64,
    /// Rows written to Parquet.
    pub written: u64,
    /// Entries sent to the dead letters.
    pub dead_lettered: u64,
    /// Findings rows written (rules that fired, one per message and rule).
    pub findings: u64,
    /// Records skipped as duplicates (seq already committed, or msgid seen).
    pub duplicates: u64,
    /// Bytes of plaintext decrypted.
    pub plaintext_bytes: u64,
    /// Bytes of encrypted input.
    pub input_bytes: u64,
    /// Lowest and highest seq written.
    pub seq_range: Option<(u64, u64)>,
    /// The checkpoint after the last commit.
    pub checkpoint: Option<u64>,
    /// The checkpoint the run started from.
    pub resumed_from: Option<u64>,
    /// Commits made.
    pub commits: u64,
    /// Wall time so far.
    pub elapsed: Duration,
    /// Parquet files committed.
    pub files: Vec<CommittedPart>,
    /// Dead-letter files committed.
    pub dead_letter_files: Vec<PathBuf>,
    /// Findings files committed.
    pub findings_files: Vec<CommittedPart>,
}

impl RunStats {
    /// Input entries per second.
    pub fn msgs_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.records_in as f64 / s
        } else {
            0.0
        }
    }
}

/// A failure that stops the run (as opposed to a bad record, which is dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The Parquet output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The dead-letter output failed: stop rather than lose records.
    #[error("writing dead letters: {0}")]
    DeadLetter(std::io::Error),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Finishing a crashed run's commit failed.
    #[error(transparent)]
    Recover(#[from] crate::sink::recover::RecoverError),
    /// The Delta output failed.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// Publishing committed files failed.
    #[error("publishing {path}: {source}")]
    Publish {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Where a run writes.
pub struct Output<'a> {
    /// The output root.
    pub dir: &'a Path,
    /// The layout under it.
    pub layout: Layout,
    /// The checkpoint store; `None` for one-shot runs without resume (`decrypt`). With
    /// [`Output::delta`] the checkpoint is in the Delta log and the store keeps only alerts.
    pub state: Option<&'a mut StateStore>,
    /// Write Delta tables under this target instead of Parquet files under `dir` (which is then
    /// unused); needs a [`Layout::Hive`] (the corp is the tables' transaction id).
    pub delta: Option<Arc<DeltaTarget>>,
}

enum Outcome {
    Row(Decoded),
    Failed(EncryptedRecord, RecordError),
    Rejected(Rejected),
}

impl Outcome {
    fn seq(&self) -> Option<u64> {
        match self {
            Outcome::Row(d) => Some(d.seq),
            Outcome::Failed(r, _) => Some(r.seq),
            Outcome::Rejected(r) => r.error.seq,
        }
    }
}

/// What the fetch stage sends on: a chunk of entries and the duplicates it dropped.
struct Chunk {
    items: Vec<Item>,
    duplicates: u64,
    input_bytes: u64,
}

/// Runs the records of `source` after the checkpoint (or after seq 0 without a state store)
/// through the decrypt into `output`, until the source has no more. `stop` ends the run early at
/// the next page: what was fetched is still decrypted, written and committed.
pub fn run(
    source: &mut dyn Source,
    keyring: &Keyring,
    output: Output<'_>,
    options: &RunOptions,
    stop: &AtomicBool,
    progress: &(dyn Fn(&RunStats) + Sync),
) -> Result<RunStats, RunError> {
    let start = Instant::now();
    let Output {
        dir,
        layout,
        mut state,
        delta,
    } = output;
    let corp = match &layout {
        Layout::Hive { corp_id, .. } => corp_id.clone(),
        Layout::Flat => String::new(),
    };
    let mut from_seq = None;
    let delta = match delta {
        Some(target) => {
            if corp.is_empty() {
                return Err(DeltaError::Location {
                    out: target.root().to_string(),
                    why: "Delta tables need a corp id (their transaction id)".into(),
                }
                .into());
            }
            let props =
                options
                    .parquet
                    .writer_properties()
                    .map_err(|source| SinkError::Parquet {
                        dir: dir.to_owned(),
                        source,
                    })?;
            let tables = DeltaTables::open(target, &corp, options.rules.is_some(), props)?;
            from_seq = tables.checkpoint();
            Some(tables)
        }
        None => None,
    };
    if let (Some(store), None) = (state.as_deref_mut(), &delta) {
        crate::sink::recover::recover(
            store,
            &corp,
            &[
                layout.messages_dir(dir),
                layout.dead_letter_dir(dir),
                layout.findings_dir(dir),
            ],
        )?;
        from_seq = store.checkpoint(&corp)?;
    }
    let floor = if options.replaying.is_empty() {
        from_seq
    } else {
        None
    };
    let files = delta.is_none();
    let sink = match files {
        true => Some(ParquetSink::new(
            &layout::messages_root(dir),
            options.parquet.clone(),
        )?),
        false => None,
    };
    let findings = match &options.rules {
        Some(rules) => Some(FindingsSink {
            sink: match files {
                true => Some(ParquetSink::with_schema(
                    &layout::findings_root(dir),
                    findings_schema(),
                    options.parquet.clone(),
                )?),
                false => None,
            },
            rules: rules.clone(),
            builders: BTreeMap::new(),
            messages_root: layout.messages_dir(dir),
            alert_min: options.alert_min.filter(|_| state.is_some()),
            alerts: Vec::new(),
        }),
        None => None,
    };
    let dead = DeadLetterSink::new(&layout.dead_letter_dir(dir));
    let (raw_tx, raw_rx) = bounded::<Result<Chunk, SourceError>>(options.queue_chunks);
    let (done_tx, done_rx) = bounded::<(Vec<Outcome>, u64, u64)>(options.queue_chunks);
    let writer = Writer {
        sink,
        findings,
        dead,
        delta,
        layout,
        state,
        corp,
        builders: BTreeMap::new(),
        partitions: PartitionCache::default(),
        stats: RunStats {
            checkpoint: from_seq,
            resumed_from: from_seq,
            ..RunStats::default()
        },
        since_commit: 0,
        high_seq: None,
        chunk: options.chunk_records,
        retire: options.replaying.clone(),
    };

    std::thread::scope(|s| {
        let corp = writer.corp.clone();
        s.spawn(move || fetch(source, &corp, floor, options, stop, raw_tx));
        let writer = s.spawn(move || writer.run(done_rx, start, options, progress));
        let mut source_error = None;
        for msg in raw_rx {
            match msg {
                Ok(chunk) => {
                    let outcomes = decrypt_chunk(keyring, options.rules.as_deref(), chunk.items);
                    if done_tx
                        .send((outcomes, chunk.duplicates, chunk.input_bytes))
                        .is_err()
                    {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    source_error = Some(e);
                    break;
                }
            }
        }
        drop(done_tx);
        let stats = writer.join().expect("writer thread panicked")?;
        match source_error {
            // Everything fetched before the failure is committed; the next run resumes there.
            Some(e) => Err(e.into()),
            None => Ok(stats),
        }
    })
}

/// Bounded memory of recent msgids: the second guard against duplicates, after the seq cursor.
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        RecentIds {
            set: HashSet::with_capacity(cap.min(1 << 16)),
            order: VecDeque::new(),
            cap,
        }
    }

    /// True if `id` was seen already; remembers it otherwise.
    fn seen(&mut self, id: &str) -> bool {
        if self.cap == 0 || id.is_empty() {
            return false;
        }
        if self.set.contains(id) {
            return true;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        false
    }
}

impl Chunk {
    fn with_capacity(n: usize) -> Self {
        Chunk {
            items: Vec::with_capacity(n),
            duplicates: 0,
            input_bytes: 0,
        }
    }
}

/// Pulls pages after the cursor until the source has no more (or `stop` is raised), and sends
/// them on in chunks of at most `chunk_records`. A chunk never spans two pages, so a slow source
/// does not hold records back waiting for a chunk to fill.
///
/// An empty page ends the run. So does a page of a cursor-driven source that does not move the
/// cursor, with an error instead: asking again would bring the same page back forever (a flood
/// of calls and dead letters), so nothing of it is sent on and the checkpoint stays at the last
/// page that did advance.
fn fetch(
    source: &mut dyn Source,
    corp: &str,
    from_seq: Option<u64>,
    options: &RunOptions,
    stop: &AtomicBool,
    tx: Sender<Result<Chunk, SourceError>>,
) {
    let limit = options.page_size.clamp(1, MAX_PAGE);
    let chunk = options.chunk_records.max(1);
    let mut cursor = from_seq.unwrap_or(0);
    let mut recent = RecentIds::new(options.dedupe_window);
    while !stop.load(Ordering::Relaxed) {
        let page = match source.fetch(cursor, limit) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if page.items.is_empty() {
            break;
        }
        cursor = if source.follows_cursor() {
            match page.advance(corp, cursor) {
                Ok(next) => next,
                Err(stalled) => {
                    let _ = tx.send(Err(stalled.into()));
                    return;
                }
            }
        } else {
            page.next_cursor(cursor)
        };
        let mut buf = Chunk::with_capacity(chunk.min(page.items.len()));
        for item in page.items {
            if let Ok(rec) = &item {
                // The source should not return what is at or below the checkpoint, nor a msgid
                // twice; if it does, the record is already in the output.
                if from_seq.is_some_and(|f| rec.seq <= f) || recent.seen(&rec.msgid) {
                    buf.duplicates += 1;
                    continue;
                }
                buf.input_bytes +=
                    (rec.encrypt_chat_msg.len() + rec.encrypt_random_key.len()) as u64;
            }
            buf.items.push(item);
            if buf.items.len() == chunk
                && tx
                    .send(Ok(std::mem::replace(&mut buf, Chunk::with_capacity(chunk))))
                    .is_err()
            {
                return;
            }
        }
        if (!buf.items.is_empty() || buf.duplicates > 0) && tx.send(Ok(buf)).is_err() {
            return;
        }
    }
}

/// Decrypts a chunk on every core; `collect` on an indexed parallel iterator keeps order.
fn decrypt_chunk(keyring: &Keyring, rules: Option<&RuleSet>, items: Vec<Item>) -> Vec<Outcome> {
    items
        .into_par_iter()
        .map(|item| match item {
            Ok(rec) => match decode(keyring, rules, &rec) {
                Ok(row) => Outcome::Row(row),
                Err(e) => Outcome::Failed(rec, e),
            },
            Err(rejected) => Outcome::Rejected(rejected),
        })
        .collect()
}

/// The findings table's side of the writer: rows of the rules that fired, in the partitions of
/// their messages, committed with them.
struct FindingsSink {
    /// The findings files (`None` with Delta output: the Delta tables take the rows).
    sink: Option<ParquetSink>,
    rules: Arc<RuleSet>,
    /// One builder per partition, like the messages'.
    builders: BTreeMap<String, (FindingsBatchBuilder, u64, u64)>,
    /// The messages folder of the corp: the screened marks name files relative to it.
    messages_root: PathBuf,
    /// Findings at or above this severity are alerts.
    alert_min: Option<Severity>,
    /// Alerts of the findings since the last commit.
    alerts: Vec<NewAlert>,
}

impl FindingsSink {
    /// Queues the alerts of one message's findings, for the next commit.
    fn queue_alerts(&mut self, corp_id: &str, row: &Decoded) {
        let Some(min) = self.alert_min else {
            return;
        };
        let mut conversation = None;
        for f in row.findings.iter().filter(|f| f.severity >= min) {
            let conversation = conversation.get_or_insert_with(|| {
                crate::model::conversation::conversation_id(&row.message).map(|c| c.into_owned())
            });
            let msg = &row.message;
            self.alerts.push(NewAlert {
                corp_id: corp_id.to_owned(),
                seq: row.seq,
                msgid: msg.msgid.clone(),
                conversation_id: conversation.clone(),
                msgtime_ms: msg.msgtime,
                from: msg.from.clone(),
                msgtype: msg.msgtype.clone(),
                rule_id: self.rules.rules()[f.rule_index].id.clone(),
                rule_set_version: self.rules.version().to_owned(),
                severity: f.severity,
                terms: f.terms.clone(),
                snippet: f.snippet.clone(),
            });
        }
    }
}

struct Writer<'a> {
    /// The message files (`None` with Delta output).
    sink: Option<ParquetSink>,
    findings: Option<FindingsSink>,
    dead: DeadLetterSink,
    /// The Delta tables, instead of the files.
    delta: Option<DeltaTables>,
    layout: Layout,
    state: Option<&'a mut StateStore>,
    corp: String,
    /// One builder per partition seen in the current chunk, reused across chunks.
    builders: BTreeMap<String, (ChatBatchBuilder, u64, u64)>,
    /// The partition of the last row.
    partitions: PartitionCache,
    stats: RunStats,
    since_commit: u64,
    /// Highest seq handed to the sinks since the start (the next checkpoint).
    high_seq: Option<u64>,
    chunk: usize,
    /// Dead-letter files to retire at the next commit (see [`RunOptions::replaying`]).
    retire: Vec<PathBuf>,
}

impl Writer<'_> {
    fn run(
        mut self,
        rx: Receiver<(Vec<Outcome>, u64, u64)>,
        start: Instant,
        options: &RunOptions,
        progress: &(dyn Fn(&RunStats) + Sync),
    ) -> Result<RunStats, RunError> {
        let mut last_report = Instant::now();
        for (outcomes, duplicates, input_bytes) in rx {
            self.stats.duplicates += duplicates;
            self.stats.input_bytes += input_bytes;
            self.write_chunk(outcomes)?;
            if self.since_commit >= options.commit_every {
                self.commit()?;
            }
            if last_report.elapsed() >= options.progress_every {
                self.stats.elapsed = start.elapsed();
                progress(&self.stats);
                last_report = Instant::now();
            }
        }
        self.commit()?;
        if let Some(sink) = &self.sink {
            self.stats.files = sink.committed().to_vec();
            if let Some(f) = self.findings.as_ref().and_then(|f| f.sink.as_ref()) {
                self.stats.findings_files = f.committed().to_vec();
            }
            self.stats.dead_letter_files = self.dead.committed().to_vec();
        }
        self.stats.elapsed = start.elapsed();
        progress(&self.stats);
        Ok(self.stats)
    }

    fn write_chunk(&mut self, outcomes: Vec<Outcome>) -> Result<(), RunError> {
        for outcome in outcomes {
            self.stats.records_in += 1;
            self.since_commit += 1;
            if let Some(seq) = outcome.seq() {
                self.high_seq = Some(self.high_seq.map_or(seq, |h| h.max(seq)));
            }
            match outcome {
                Outcome::Row(row) => {
                    let partition = self.partitions.key(&self.layout, row.message.msgtime);
                    if !self.builders.contains_key(partition) {
                        let builder = ChatBatchBuilder::with_capacity(self.chunk);
                        self.builders
                            .insert(partition.to_owned(), (builder, u64::MAX, 0));
                    }
                    let (b, first, last) =
                        self.builders.get_mut(partition).expect("inserted above");
                    b.append(row.seq, row.publickey_ver, &row.plaintext, &row.message);
                    *first = (*first).min(row.seq);
                    *last = (*last).max(row.seq);
                    if let (Some(f), false) = (&mut self.findings, row.findings.is_empty()) {
                        let (fb, first, last) = f
                            .builders
                            .entry(partition.to_owned())
                            .or_insert_with(|| (FindingsBatchBuilder::default(), u64::MAX, 0));
                        fb.append(&f.rules, row.seq, &row.message, &row.findings);
                        *first = (*first).min(row.seq);
                        *last = (*last).max(row.seq);
                        f.queue_alerts(&self.corp, &row);
                    }
                    self.stats.plaintext_bytes += row.plaintext.len() as u64;
                    self.stats.written += 1;
                    self.stats.seq_range =
                        Some(self.stats.seq_range.map_or((row.seq, row.seq), |(a, z)| {
                            (a.min(row.seq), z.max(row.seq))
                        }));
                }
                Outcome::Failed(rec, err) => {
                    tracing::warn!(error = %err, "dead-lettered");
                    self.dead_letter(&DeadLetter::new(&err, Some(&rec), None))?;
                }
                Outcome::Rejected(r) => {
                    tracing::warn!(error = %r.error, "dead-lettered");
                    self.dead_letter(&DeadLetter::new(&r.error, None, Some(&r.raw)))?;
                }
            }
        }
        let mut full = false;
        for (partition, (b, first, last)) in self.builders.iter_mut() {
            if b.is_empty() {
                continue;
            }
            let batch = b.finish();
            match (&mut self.sink, &mut self.delta) {
                (Some(sink), _) => full |= sink.write_to(partition, &batch, *first, *last)?,
                (None, Some(delta)) => delta.write_messages(partition, &batch)?,
                (None, None) => unreachable!("a writer has files or Delta tables"),
            }
            *first = u64::MAX;
            *last = 0;
        }
        if let Some(f) = &mut self.findings {
            for (partition, (b, first, last)) in f.builders.iter_mut() {
                if b.is_empty() {
                    continue;
                }
                let batch = b.finish();
                // Findings are few: their files close at the messages' commits, never on size.
                match (&mut f.sink, &mut self.delta) {
                    (Some(sink), _) => {
                        sink.write_to(partition, &batch, *first, *last)?;
                    }
                    (None, Some(delta)) => delta.write_findings(partition, &batch)?,
                    (None, None) => unreachable!("a writer has files or Delta tables"),
                }
                *first = u64::MAX;
                *last = 0;
            }
            if f.builders.len() > 8 {
                f.builders.clear();
            }
        }
        // Builders are reused across chunks; a long run crossing many dates keeps a handful.
        if self.builders.len() > 8 {
            self.builders.clear();
        }
        if full {
            self.commit()?;
        }
        Ok(())
    }

    /// Sends a record that could not become a row to the dead letters.
    fn dead_letter(&mut self, d: &DeadLetter<'_>) -> Result<(), RunError> {
        match &mut self.delta {
            Some(delta) => delta.dead_letter(d),
            None => self.dead.push(d).map_err(RunError::DeadLetter)?,
        }
        self.stats.dead_lettered += 1;
        Ok(())
    }

    /// Makes everything written so far durable, then moves the checkpoint.
    fn commit(&mut self) -> Result<(), RunError> {
        if self.delta.is_some() {
            return self.commit_delta();
        }
        let sink = self.sink.as_mut().expect("files without Delta");
        let parts = sink.prepare()?;
        let found = match self.findings.as_mut().and_then(|f| f.sink.as_mut()) {
            Some(f) => f.prepare()?,
            None => Vec::new(),
        };
        let dead = self.dead.prepare().map_err(RunError::DeadLetter)?;
        if parts.is_empty() && dead.is_none() && self.since_commit == 0 && self.retire.is_empty() {
            return Ok(());
        }
        let mut renames: Vec<Rename> = parts
            .iter()
            .chain(&found)
            .map(|p| Rename {
                tmp: p.file.tmp.clone(),
                dest: p.file.dest.clone(),
            })
            .collect();
        // Every message file of this commit was screened by the rule set, matches or not.
        let screened = match &self.findings {
            Some(f) => parts
                .iter()
                .map(|p| Screened {
                    rule_set_version: f.rules.version().to_owned(),
                    file: p
                        .part
                        .path
                        .strip_prefix(&f.messages_root)
                        .unwrap_or(&p.part.path)
                        .to_string_lossy()
                        .into_owned(),
                })
                .collect(),
            None => Vec::new(),
        };
        let extras = JournalExtras {
            screened,
            alerts: match &mut self.findings {
                Some(f) => std::mem::take(&mut f.alerts),
                None => Vec::new(),
            },
            ..JournalExtras::default()
        };
        if let Some(d) = &dead {
            renames.push(Rename {
                tmp: d.tmp.clone(),
                dest: d.dest.clone(),
            });
        }
        // Retiring a replayed dead-letter file is a rename to a temporary name, journaled with
        // the files that replace it: after a crash, recovery finishes it and deletes the
        // temporary, so a record is never both a row and a dead letter, nor neither.
        let retired: Vec<Rename> = std::mem::take(&mut self.retire)
            .into_iter()
            .map(|old| Rename {
                dest: layout::retired(&old),
                tmp: old,
            })
            .collect();
        renames.extend(retired.iter().cloned());
        let journal = match self.state.as_deref_mut() {
            Some(store) => {
                let seq = self.high_seq.or(self.stats.checkpoint).unwrap_or(0);
                Some(store.journal_commit(&self.corp, seq, &renames, &extras)?)
            }
            None => None,
        };
        for r in &renames {
            crate::sink::atomic::publish(&r.tmp, &r.dest).map_err(|source| RunError::Publish {
                path: r.dest.clone(),
                source,
            })?;
        }
        if let (Some(store), Some(id)) = (self.state.as_deref_mut(), journal) {
            store.complete_commit(id)?;
            self.stats.checkpoint = store.checkpoint(&self.corp)?;
        }
        for r in &retired {
            let _ = std::fs::remove_file(&r.dest);
        }
        if let Some(sink) = &mut self.sink {
            sink.mark_committed(parts.into_iter().map(|p| p.part));
        }
        self.stats.findings += found.iter().map(|p| p.part.rows).sum::<u64>();
        if let Some(f) = self.findings.as_mut().and_then(|f| f.sink.as_mut()) {
            f.mark_committed(found.into_iter().map(|p| p.part));
        }
        if let Some(d) = dead {
            self.dead.mark_committed(d.dest);
        }
        self.stats.commits += 1;
        self.since_commit = 0;
        Ok(())
    }

    /// The Delta commit: alerts stored first (each is unique per message, rule and rule-set
    /// version, so storing one again after a crash adds nothing), then one Delta transaction per
    /// table, the messages table's last: its version is the checkpoint.
    fn commit_delta(&mut self) -> Result<(), RunError> {
        if self.since_commit == 0 {
            return Ok(());
        }
        if let (Some(store), Some(f)) = (self.state.as_deref_mut(), &mut self.findings) {
            if !f.alerts.is_empty() {
                store.enqueue_alerts(&std::mem::take(&mut f.alerts))?;
            }
        }
        let seq = self.high_seq.or(self.stats.checkpoint).unwrap_or(0);
        let delta = self.delta.as_mut().expect("checked by commit");
        let committed = delta.commit(seq)?;
        self.stats.checkpoint = delta.checkpoint();
        self.stats.findings += committed.findings.iter().map(|p| p.rows).sum::<u64>();
        self.stats.files.extend(committed.messages);
        self.stats.findings_files.extend(committed.findings);
        self.stats
            .dead_letter_files
            .extend(committed.dead_letters.into_iter().map(|p| p.path));
        self.stats.commits += 1;
        self.since_commit = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cache_agrees_with_the_time_zone_across_day_boundaries() {
        let layout = Layout::Hive {
            corp_id: "ww1".into(),
            tz: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
        };
        // 2026-11-20 00:00 +08:00 is 2026-11-19 16:00 UTC.
        let midnight = 1_795_104_000_000;
        let mut cache = PartitionCache::default();
        let cases = [
            (Some(midnight - 1), "corp_id=ww1/date=2026-11-19"),
            (Some(midnight), "corp_id=ww1/date=2026-11-20"),
            (Some(midnight + 86_399_999), "corp_id=ww1/date=2026-11-20"),
            (Some(midnight + 86_400_000), "corp_id=ww1/date=2026-11-21"),
            (None, "corp_id=ww1/date=__HIVE_DEFAULT_PARTITION__"),
            (Some(midnight - 1), "corp_id=ww1/date=2026-11-19"),
        ];
        for (t, want) in cases {
            assert_eq!(cache.key(&layout, t), want, "{t:?}");
            assert_eq!(layout.partition(t).0, want, "{t:?}");
        }
        assert_eq!(
            PartitionCache::default().key(&Layout::Flat, Some(midnight)),
            ""
        );
    }
}
