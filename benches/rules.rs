//! Compliance rule matching per message over every fixture message (`fixtures/messages`), with no rules, three
//! regexes alone, 10 and 1,000 keywords plus the three regexes, and 1,000 keywords alone; and the text extraction alone. Compare with
//! `per_message` (the decrypt path), measured in the same run: see docs/compliance.md.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use wecom_archive::compliance::rules::RuleSet;
use wecom_archive::compliance::text::for_each_text;
use wecom_archive::model::message::{parse, ChatMessage};

fn fixtures() -> Vec<ChatMessage> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/messages");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| parse(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// `n` keywords in rules of ten: mostly words that occur in no fixture (two to four common Chinese characters,
/// or an ASCII word), plus two that do (`合同`, `开会`), so that matching, not only scanning, is measured.
fn rules_toml(n: usize, regexes: bool) -> String {
    const CHARS: &[char] = &[
        '的', '一', '是', '不', '了', '人', '我', '在', '有', '他', '这', '中', '大', '来', '上',
        '国', '个', '到', '说', '们', '为', '子', '和', '你', '地', '出', '道', '也', '时', '年',
        '价', '钱', '返', '利', '私', '单',
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1000);
    let mut keywords: Vec<String> = vec!["合同".into(), "开会".into()];
    while keywords.len() < n {
        let w: String = if rng.gen_bool(0.8) {
            (0..rng.gen_range(2..=4))
                .map(|_| CHARS[rng.gen_range(0..CHARS.len())])
                .collect()
        } else {
            (0..rng.gen_range(4..=9))
                .map(|_| (b'a' + rng.gen_range(0..26)) as char)
                .collect()
        };
        keywords.push(w);
    }
    keywords.truncate(n);
    let mut toml = String::new();
    for (i, chunk) in keywords.chunks(10).enumerate() {
        let list: Vec<String> = chunk.iter().map(|k| format!("{k:?}")).collect();
        toml += &format!(
            "[[rule]]\nid = \"kw{i}\"\nseverity = \"warn\"\nkeywords = [{}]\n",
            list.join(", ")
        );
    }
    if regexes {
        toml += r#"
[[rule]]
id = "idcard"
severity = "critical"
regex = ['\d{6}(19|20)\d{2}[0-9Xx]{4}']

[[rule]]
id = "phone"
severity = "warn"
regex = ['1[3-9]\d{9}']

[[rule]]
id = "email"
severity = "info"
regex = ['[\w.+-]+@[\w-]+\.[\w.]+']
"#;
    }
    toml
}

fn rules(c: &mut Criterion) {
    let msgs = fixtures();
    let sets = [
        ("no_rules", RuleSet::empty()),
        ("3_regexes", rules_set(0, true)),
        ("10_keywords_3_regexes", rules_set(10, true)),
        ("1000_keywords_3_regexes", rules_set(1000, true)),
        ("1000_keywords", rules_set(1000, false)),
    ];

    let mut g = c.benchmark_group("rules");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    // Time per iteration / number of fixture messages = time per message.
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("texts_only", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for m in &msgs {
                for_each_text(m, &mut |p| bytes += p.text.len());
            }
            bytes
        })
    });
    for (name, set) in &sets {
        let fired: usize = msgs.iter().map(|m| set.match_message(m).len()).sum();
        eprintln!(
            "rules/{name}: {fired} findings over {} messages",
            msgs.len()
        );
        g.bench_function(*name, |b| {
            b.iter(|| {
                msgs.iter()
                    .map(|m| set.match_message(m).len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

fn rules_set(n: usize, regexes: bool) -> RuleSet {
    RuleSet::parse(&rules_toml(n, regexes), "bench").unwrap()
}

criterion_group!(benches, rules);
criterion_main!(benches);
