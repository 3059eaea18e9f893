//! A deterministic simulator of one corp's archive, served page by page like `GetChatData`.
//!
//! Every record is encrypted exactly as WeCom does it (random `k1` and framing, [`encrypt`], then
//! the `encrypt_key` RSA-wrapped with the corp's public key), so everything downstream of the
//! source runs its real code. The traffic looks like a real corp's: mostly short texts, some
//! images, files, voice, `mixed` and `chatrecord` messages, switch records without an envelope,
//! Chinese text, group and 1:1 chats, external contacts. The key rotates from version 1 to 2 a
//! third of the way in, so runs always use several key versions.
//!
//! A record depends only on `(seed, seq)`: the same seq always yields the same record, whatever
//! the page size or how often the pull was interrupted. That is what the crash tests rely on.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

use super::{Page, Source, SourceError};
use crate::crypto::keyring::Keyring;
use crate::crypto::message::{encrypt, Framing, MessageKey};
use crate::crypto::unwrap::{Backend, KeyLoadError, WrapKey};
use crate::model::record::EncryptedRecord;

/// Encrypts `plaintext` into a `chatdata` record: random `k1` and framing, `encrypt_key`
/// RSA-wrapped with the corp public key of version `publickey_ver`.
pub fn encrypt_record<R: RngCore>(
    rng: &mut R,
    wrap: &WrapKey,
    publickey_ver: u32,
    seq: u64,
    msgid: &str,
    plaintext: &[u8],
) -> EncryptedRecord {
    let k1 = random_k1(rng);
    let e = encrypt(rng, &k1, plaintext, &Framing::default());
    EncryptedRecord {
        seq,
        msgid: msgid.to_owned(),
        publickey_ver,
        encrypt_random_key: wrap.wrap(e.encrypt_key.as_bytes()),
        encrypt_chat_msg: e.encrypt_msg,
    }
}

/// A 32-character `k1` as the server makes them (base64 alphabet).
fn random_k1<R: RngCore>(rng: &mut R) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..32).map(|_| ALPHABET[rng.gen_range(0..64)]).collect()
}

/// The simulator's built-in key pairs: the test keys in `fixtures/` (version 1 PKCS#1, version 2
/// PKCS#8). They are public test material, never to be used for a real corp.
const DEMO_KEYS: [(u32, &str, &str); 2] = [
    (
        1,
        include_str!("../../fixtures/rsa_test_priv.pem"),
        include_str!("../../fixtures/rsa_test_pub.pem"),
    ),
    (
        2,
        include_str!("../../fixtures/rsa_test_v2_pkcs8.pem"),
        include_str!("../../fixtures/rsa_test_v2_pub.pem"),
    ),
];

/// A keyring holding the private halves of the simulator's keys.
pub fn demo_keyring(backend: Backend) -> Result<Keyring, KeyLoadError> {
    let mut k = Keyring::new(backend);
    for (ver, private, _) in DEMO_KEYS {
        k.add_pem(ver, private.as_bytes())?;
    }
    Ok(k)
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The archive holds seqs `1..=messages`.
    pub messages: u64,
    /// Same seed, same archive.
    pub seed: u64,
    /// `msgtime` of seq 1, ms since the epoch.
    pub start_ms: i64,
    /// Mean gap between messages, ms.
    pub mean_gap_ms: i64,
    /// Every Nth record is corrupted in transit (0: never), to exercise the dead letters.
    pub corrupt_every: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            messages: 10_000,
            seed: 2026,
            // 2026-11-20 00:00:00 +08:00
            start_ms: 1_795_104_000_000,
            mean_gap_ms: 30_000,
            corrupt_every: 0,
        }
    }
}

/// Message keys per key version. WeCom makes a fresh key per message; the simulator reuses a
/// pool, each key RSA-wrapped once, because the wrap would otherwise be most of its cost and the
/// simulator stands in for WeCom's servers, whose CPU is not ours. The pipeline still unwraps
/// every record's key in full.
const KEY_POOL: usize = 64;

/// The simulator as a [`Source`].
pub struct SimSource {
    config: SimConfig,
    /// Per key version: the pooled message keys and their `encrypt_random_key`s.
    pools: Vec<(u32, Vec<(MessageKey, String)>)>,
}

impl SimSource {
    /// A simulator with the built-in keys.
    pub fn new(config: SimConfig) -> Self {
        let pools = DEMO_KEYS
            .iter()
            .map(|(v, _, public)| {
                let wrap = WrapKey::from_pem(public).expect("built-in public key parses");
                let mut rng = StdRng::seed_from_u64(config.seed ^ u64::from(*v) << 32);
                let pool = (0..KEY_POOL)
                    .map(|_| {
                        let k1 = random_k1(&mut rng);
                        let key = MessageKey::random(&mut rng, &k1);
                        let wrapped = wrap.wrap(key.encrypt_key.as_bytes());
                        (key, wrapped)
                    })
                    .collect();
                (*v, pool)
            })
            .collect();
        SimSource { config, pools }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The record at `seq` (1-based), exactly as the simulated WeCom serves it.
    pub fn record(&self, seq: u64) -> EncryptedRecord {
        let mut rng =
            StdRng::seed_from_u64(self.config.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let plaintext = message(&mut rng, &self.config, seq);
        let msgid = plaintext["msgid"].as_str().unwrap_or_default().to_owned();
        let bytes = serde_json::to_vec(&plaintext).expect("json serialises");
        let (ver, pool) = if seq <= self.config.messages / 3 {
            &self.pools[0]
        } else {
            &self.pools[1]
        };
        let (key, wrapped) = &pool[rng.gen_range(0..pool.len())];
        let mut rec = EncryptedRecord {
            seq,
            msgid,
            publickey_ver: *ver,
            encrypt_random_key: wrapped.clone(),
            encrypt_chat_msg: key.encrypt(&mut rng, &bytes),
        };
        if self.config.corrupt_every > 0 && seq.is_multiple_of(self.config.corrupt_every) {
            // Transit damage: the record no longer decrypts (or no longer parses).
            match seq / self.config.corrupt_every % 3 {
                0 => rec.encrypt_random_key.insert(7, '*'),
                1 => rec.publickey_ver = 99,
                _ => rec.encrypt_chat_msg.truncate(60),
            }
        }
        rec
    }
}

impl Source for SimSource {
    fn describe(&self) -> String {
        format!(
            "simulator ({} messages, seed {})",
            self.config.messages, self.config.seed
        )
    }

    fn fetch(&mut self, after: u64, limit: u32) -> Result<Page, SourceError> {
        let first = after.saturating_add(1);
        let last = after
            .saturating_add(u64::from(limit.min(super::MAX_PAGE)))
            .min(self.config.messages);
        Ok(Page {
            items: (first..=last).map(|s| Ok(self.record(s))).collect(),
        })
    }
}

/// The message types the simulator sends, with weights per 1000 messages (roughly what a
/// sales team's archive looks like: overwhelmingly short texts).
const MIX: &[(&str, u32)] = &[
    ("text", 700),
    ("image", 80),
    ("emotion", 30),
    ("voice", 30),
    ("file", 25),
    ("mixed", 25),
    ("video", 15),
    ("link", 15),
    ("revoke", 15),
    ("chatrecord", 10),
    ("weapp", 6),
    ("location", 5),
    ("card", 5),
    ("redpacket", 5),
    ("markdown", 5),
    ("agree", 4),
    ("disagree", 2),
    ("meeting_voice_call", 3),
    ("todo", 3),
    ("vote", 2),
    ("switch", 10),
    ("calendar", 2),
    ("docmsg", 3),
];

fn templates() -> &'static Vec<(&'static str, u32, Value)> {
    static T: OnceLock<Vec<(&'static str, u32, Value)>> = OnceLock::new();
    T.get_or_init(|| {
        macro_rules! fixture {
            ($name:literal) => {
                (
                    $name,
                    include_str!(concat!("../../fixtures/messages/", $name, ".json")),
                )
            };
        }
        let sources = [
            fixture!("text"),
            fixture!("image"),
            fixture!("emotion"),
            fixture!("voice"),
            fixture!("file"),
            fixture!("mixed"),
            fixture!("video"),
            fixture!("link"),
            fixture!("revoke"),
            fixture!("chatrecord"),
            fixture!("weapp"),
            fixture!("location"),
            fixture!("card"),
            fixture!("redpacket"),
            fixture!("markdown"),
            fixture!("agree"),
            fixture!("disagree"),
            fixture!("meeting_voice_call"),
            fixture!("todo"),
            fixture!("vote"),
            fixture!("switch"),
            fixture!("calendar"),
            fixture!("docmsg"),
        ];
        MIX.iter()
            .map(|(name, weight)| {
                let text = sources
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| *t)
                    .expect("every simulated type has a fixture");
                let mut msg: Value = serde_json::from_str(text).expect("fixture is JSON");
                announce_sim_media_in_items(&mut msg);
                (*name, *weight, msg)
            })
            .collect()
    })
}

/// Makes the md5sum and size of media inside `mixed`/`chatrecord` items (JSON strings) those of
/// the simulated media source, so that their downloads verify. Done once per template.
fn announce_sim_media_in_items(msg: &mut Value) {
    for key in ["mixed", "chatrecord"] {
        let Some(items) = msg
            .get_mut(key)
            .and_then(|p| p.get_mut("item"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for item in items {
            let Some(content) = item.get_mut("content") else {
                continue;
            };
            let Some(mut inner) = content
                .as_str()
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
            else {
                continue;
            };
            let Some(id) = inner.get("sdkfileid").and_then(Value::as_str) else {
                continue;
            };
            let (md5, size) = super::media::sim_media_meta(id);
            inner["md5sum"] = json!(md5);
            inner["filesize"] = json!(size);
            *content = json!(inner.to_string());
        }
    }
}

const STAFF: &[&str] = &[
    "zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba", "HuangJie", "chen.yu",
];
const PHRASES: &[&str] = &[
    "您好",
    "合同已发您邮箱",
    "请查收",
    "好的，收到",
    "明天上午十点开会",
    "报价单稍后发您",
    "谢谢！",
    "这个价格可以再优惠一点吗？",
    "ok",
    "没问题",
    "我确认一下库存",
    "发票信息请提供一下",
    "👍",
    "Please check the attachment.",
    "辛苦了",
    "客户那边反馈说需要加急",
    "已安排发货",
    "在吗",
    "周五之前可以交付",
    "麻烦看一下附件",
    "[捂脸]",
    "收到，马上处理",
];

fn pick<'a, T: ?Sized>(rng: &mut StdRng, xs: &'a [&'a T]) -> &'a T {
    xs[rng.gen_range(0..xs.len())]
}

fn external_id(rng: &mut StdRng) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..16)
        .map(|_| A[rng.gen_range(0..A.len())] as char)
        .collect();
    format!("wm{tail}")
}

fn text_content(rng: &mut StdRng) -> String {
    // Mostly one or two phrases; now and then a long paragraph (pasted notes, addresses).
    let n = match rng.gen_range(0..100) {
        0..=69 => 1,
        70..=94 => rng.gen_range(2..5),
        _ => rng.gen_range(10..80),
    };
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(if rng.gen_bool(0.2) { '\n' } else { '，' });
        }
        s.push_str(pick(rng, PHRASES));
    }
    if rng.gen_range(0..500) == 0 {
        // Raw control characters do occur in real plaintext; the model must keep them.
        s.push('\u{1}');
    }
    s
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

/// The plaintext message at `seq`.
fn message(rng: &mut StdRng, config: &SimConfig, seq: u64) -> Value {
    let templates = templates();
    let total: u32 = templates.iter().map(|(_, w, _)| w).sum();
    let mut roll = rng.gen_range(0..total);
    let (name, mut msg) = templates
        .iter()
        .find_map(|(n, w, t)| {
            if roll < *w {
                Some((*n, t.clone()))
            } else {
                roll -= w;
                None
            }
        })
        .expect("roll < total");
    // Time moves forward with seq; the jitter keeps it monotonic-ish, as real archives are.
    let gap = config.mean_gap_ms.max(1);
    let msgtime = config.start_ms + (seq as i64) * gap + rng.gen_range(0..gap);
    let external = rng.gen_bool(0.3);
    let msgid = format!(
        "{}_{}{}",
        rng.next_u64() % 10_000_000_000_000_000_000,
        msgtime / 1000,
        if external { "_external" } else { "" }
    );
    let obj = msg.as_object_mut().expect("fixtures are objects");
    obj.insert("msgid".into(), json!(msgid));
    if name == "switch" {
        obj.insert("time".into(), json!(msgtime));
        obj.insert("user".into(), json!(pick(rng, STAFF)));
        return msg;
    }
    let me = pick(rng, STAFF).to_string();
    let other = if external {
        external_id(rng)
    } else {
        pick(rng, STAFF).to_string()
    };
    let (from, to) = if rng.gen_bool(0.5) {
        (me, other)
    } else {
        (other, me)
    };
    let group = rng.gen_bool(0.35);
    let tolist: Vec<String> = if group {
        let mut v = vec![to];
        for _ in 0..rng.gen_range(1..6) {
            v.push(pick(rng, STAFF).to_string());
        }
        v
    } else {
        vec![to]
    };
    obj.insert("from".into(), json!(from));
    obj.insert("tolist".into(), json!(tolist));
    obj.insert(
        "roomid".into(),
        json!(if group {
            format!("wr{}", hex(rng, 12))
        } else {
            String::new()
        }),
    );
    obj.insert("msgtime".into(), json!(msgtime));
    match name {
        "text" => {
            obj.insert("text".into(), json!({ "content": text_content(rng) }));
        }
        "image" | "voice" | "video" | "file" | "emotion" => {
            if let Some(p) = obj.get_mut(name).and_then(Value::as_object_mut) {
                let sdkfileid = format!("CtYBMzA2OTAy{}", hex(rng, 48));
                // The content is the simulated media source's, so that downloads verify: a
                // table lookup, no hashing per record. The random draws that used to make the
                // md5sum and size stay, so the rest of every record is unchanged.
                let (md5, size) = super::media::sim_media_meta(&sdkfileid);
                for _ in 0..32 {
                    rng.gen_range(0..16u8);
                }
                let _: u64 = match name {
                    "video" | "file" => rng.gen_range(10_000..20_000_000),
                    _ => rng.gen_range(2_000..2_000_000),
                };
                p.insert("sdkfileid".into(), json!(sdkfileid));
                p.insert("md5sum".into(), json!(md5));
                for key in ["filesize", "imagesize", "voice_size"] {
                    if p.contains_key(key) {
                        p.insert(key.into(), json!(size));
                    }
                }
            }
        }
        _ => {}
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::message::decrypt;
    use crate::model::message::parse;

    #[test]
    fn records_are_deterministic_per_seq() {
        let a = SimSource::new(SimConfig::default());
        let b = SimSource::new(SimConfig::default());
        // The RSA padding is random, so compare what the record decrypts to.
        let keys = demo_keyring(Backend::default()).unwrap();
        for seq in [1, 2, 5000, 9999] {
            let (ra, rb) = (a.record(seq), b.record(seq));
            assert_eq!(ra.msgid, rb.msgid);
            assert_eq!(ra.encrypt_chat_msg, rb.encrypt_chat_msg);
            let ka = keys
                .unwrap(ra.publickey_ver, &ra.encrypt_random_key)
                .unwrap();
            let pa = decrypt(&ka, ra.encrypt_chat_msg.as_bytes()).unwrap();
            let msg = parse(&pa).unwrap();
            assert_eq!(msg.msgid, ra.msgid);
        }
    }

    #[test]
    fn pages_follow_the_cursor_and_rotate_keys() {
        let mut s = SimSource::new(SimConfig {
            messages: 2500,
            ..SimConfig::default()
        });
        let p = s.fetch(0, 1000).unwrap();
        assert_eq!(p.items.len(), 1000);
        assert_eq!(p.next_cursor(0), 1000);
        let p = s.fetch(2000, 1000).unwrap();
        assert_eq!(p.items.len(), 500);
        assert_eq!(p.next_cursor(2000), 2500);
        assert!(s.fetch(2500, 1000).unwrap().items.is_empty());
        let vers: std::collections::BTreeSet<u32> = [1, 2500]
            .iter()
            .map(|&q| s.record(q).publickey_ver)
            .collect();
        assert_eq!(vers.into_iter().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn mix_covers_many_types_and_parses() {
        let s = SimSource::new(SimConfig::default());
        let keys = demo_keyring(Backend::default()).unwrap();
        let mut types = std::collections::BTreeMap::<String, u32>::new();
        let mut media_kinds = std::collections::BTreeSet::new();
        for seq in 1..=600 {
            let r = s.record(seq);
            let k = keys.unwrap(r.publickey_ver, &r.encrypt_random_key).unwrap();
            let pt = decrypt(&k, r.encrypt_chat_msg.as_bytes()).unwrap();
            let m = parse(&pt).unwrap_or_else(|e| panic!("seq {seq}: {e}"));
            // Every media reference, also inside mixed/chatrecord items, announces the md5 and
            // size of what the simulated media source serves.
            for r in m.media() {
                let (md5, size) = crate::source::media::sim_media_meta(&r.sdkfileid);
                if r.kind != crate::model::message::MediaKind::MeetingVoiceCall {
                    assert_eq!(r.md5sum.as_deref(), Some(md5), "seq {seq} {:?}", r.kind);
                    assert_eq!(r.size, Some(size), "seq {seq} {:?}", r.kind);
                }
                media_kinds.insert(r.kind.as_str());
            }
            *types.entry(m.msgtype).or_default() += 1;
        }
        assert!(media_kinds.len() >= 5, "{media_kinds:?}");
        assert!(types.len() >= 8, "{types:?}");
        assert!(types["text"] > 300, "{types:?}");
    }
}
