//! The compliance layer end to end: the pipeline's findings equal a brute-force scan of the same
//! messages; `scan` writes the same findings for an archive pulled without rules, is idempotent
//! per rule-set version, adds a new version's findings beside the old, and skips what a
//! compaction merged from screened files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wecom_archive::compliance::text::texts;
use wecom_archive::model::conversation::involves_external;
use wecom_archive::model::message::parse;
use wecom_archive::sink::layout;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CORP: &str = "wwcompliance0001";

/// Rules the simulator's texts hit: Chinese and English keywords, a case-folded one, a regex,
/// a msgtype filter and an external-only scope.
const RULES: &str = r#"
[[rule]]
id = "invoice"
severity = "warn"
keywords = ["发票", "INVOICE"]

[[rule]]
id = "discount"
severity = "critical"
keywords = ["优惠"]
scope = "external"

[[rule]]
id = "attachment"
severity = "info"
keywords = ["please check"]
regex = ['附件$']
msgtypes = ["text"]

[[rule]]
id = "internal-delivery"
severity = "info"
keywords = ["发货"]
scope = "internal"
"#;

struct Rule {
    id: &'static str,
    keywords: &'static [&'static str],
    regex: &'static [&'static str],
    msgtypes: Option<&'static [&'static str]>,
    scope: &'static str,
}

/// The same rules, for the brute force.
const BRUTE: &[Rule] = &[
    Rule {
        id: "invoice",
        keywords: &["发票", "INVOICE"],
        regex: &[],
        msgtypes: None,
        scope: "any",
    },
    Rule {
        id: "discount",
        keywords: &["优惠"],
        regex: &[],
        msgtypes: None,
        scope: "external",
    },
    Rule {
        id: "attachment",
        keywords: &["please check"],
        regex: &["附件$"],
        msgtypes: Some(&["text"]),
        scope: "any",
    },
    Rule {
        id: "internal-delivery",
        keywords: &["发货"],
        regex: &[],
        msgtypes: None,
        scope: "internal",
    },
];

fn run(args: &[&str], cwd: &Path) -> Output {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn demo(cwd: &Path, messages: u64, rules: bool) {
    let n = messages.to_string();
    let mut args = vec![
        "demo",
        "--messages",
        &n,
        "--corp-id",
        CORP,
        "--out",
        "archive",
        "--corrupt-every",
        "0",
        "-q",
    ];
    if rules {
        args.extend(["--rules", "rules.toml"]);
    }
    run(&args, cwd);
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if !name.starts_with('.') && name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out
}

fn strings(batch: &arrow_array::RecordBatch, name: &str) -> Vec<String> {
    let c = batch.column_by_name(name).unwrap();
    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
    (0..c.len()).map(|i| c.value(i).to_owned()).collect()
}

/// `(seq, rule_id, rule_set_version)` of every findings row; a row twice fails.
fn findings(out: &Path) -> BTreeSet<(i64, String, String)> {
    let mut set = BTreeSet::new();
    for p in parquet_files(&layout::findings_root(out)) {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let seq = b.column_by_name("seq").unwrap();
            let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
            let rules = strings(&b, "rule_id");
            let versions = strings(&b, "rule_set_version");
            for i in 0..b.num_rows() {
                let row = (seq.value(i), rules[i].clone(), versions[i].clone());
                assert!(set.insert(row.clone()), "findings row twice: {row:?}");
            }
        }
    }
    set
}

/// `(seq, rule_id)` of every message a rule fires on, by checking each rule against each text
/// one by one: no automaton, no regex set.
fn brute_force(out: &Path) -> BTreeSet<(i64, String)> {
    let mut set = BTreeSet::new();
    for p in parquet_files(&layout::messages_root(out)) {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let seq = b.column_by_name("seq").unwrap();
            let seq = seq.as_any().downcast_ref::<Int64Array>().unwrap();
            for (i, raw) in strings(&b, "raw_json").iter().enumerate() {
                let msg = parse(raw.as_bytes()).unwrap();
                let texts: Vec<String> = texts(&msg)
                    .into_iter()
                    .map(|t| t.text.into_owned())
                    .collect();
                let external = involves_external(&msg);
                for rule in BRUTE {
                    let type_ok = rule
                        .msgtypes
                        .is_none_or(|t| t.contains(&msg.msgtype.as_str()));
                    let scope_ok = match rule.scope {
                        "external" => external,
                        "internal" => !external,
                        _ => true,
                    };
                    let hit = texts.iter().any(|t| {
                        rule.keywords
                            .iter()
                            .any(|k| t.to_lowercase().contains(&k.to_lowercase()))
                            || rule
                                .regex
                                .iter()
                                .any(|r| regex::Regex::new(r).unwrap().is_match(t))
                    });
                    if type_ok && scope_ok && hit {
                        set.insert((seq.value(i), rule.id.to_owned()));
                    }
                }
            }
        }
    }
    set
}

fn version(rules: &str) -> String {
    wecom_archive::compliance::rules::RuleSet::parse(rules, "rules.toml")
        .unwrap()
        .version()
        .to_owned()
}

fn without_version(set: &BTreeSet<(i64, String, String)>, v: &str) -> BTreeSet<(i64, String)> {
    set.iter()
        .filter(|(_, _, ver)| ver == v)
        .map(|(s, r, _)| (*s, r.clone()))
        .collect()
}

fn scan_json(cwd: &Path, rules: &str) -> serde_json::Value {
    let o = run(
        &["scan", "--out", "archive", "--rules", rules, "--json"],
        cwd,
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn pipeline_findings_equal_a_brute_force_scan_and_scan_adds_the_same_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("rules.toml"), RULES).unwrap();
    let v1 = version(RULES);

    // The pipeline screens as it writes.
    demo(cwd, 3000, true);
    let out = cwd.join("archive");
    let expected = brute_force(&out);
    let rules_hit: BTreeSet<&str> = expected.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        rules_hit.len(),
        4,
        "every rule fires somewhere: {rules_hit:?}"
    );
    let found = findings(&out);
    assert_eq!(without_version(&found, &v1), expected);
    assert_eq!(found.len(), expected.len(), "one version only");

    // The same version again: every file was screened by the pipeline, nothing to do.
    let report = scan_json(cwd, "rules.toml");
    assert_eq!(report["corps"][0]["files_scanned"], 0);
    assert!(report["corps"][0]["files_already"].as_u64().unwrap() > 0);
    assert_eq!(findings(&out), found);

    // A new version (one more keyword): its findings beside the old ones, once, even run twice.
    let rules2 = RULES.replace(r#"keywords = ["发货"]"#, r#"keywords = ["发货", "库存"]"#);
    std::fs::write(cwd.join("rules2.toml"), &rules2).unwrap();
    let v2 = version(&rules2);
    assert_ne!(v1, v2);
    let first = scan_json(cwd, "rules2.toml");
    assert!(first["corps"][0]["files_scanned"].as_u64().unwrap() > 0);
    let second = scan_json(cwd, "rules2.toml");
    assert_eq!(second["corps"][0]["files_scanned"], 0);
    assert_eq!(second["corps"][0]["findings"], 0);
    let both = findings(&out);
    assert_eq!(without_version(&both, &v1), expected);
    let new = without_version(&both, &v2);
    assert!(new.is_superset(&expected) && new.len() > expected.len());
    assert_eq!(
        both.len() as u64,
        expected.len() as u64 + first["corps"][0]["findings"].as_u64().unwrap()
    );

    // The checkpoint did not move, and a reader sees the findings partitioned by corp and day.
    let store = wecom_archive::state::StateStore::open(&layout::state_path(&out)).unwrap();
    assert_eq!(store.checkpoint(CORP).unwrap(), Some(3000));
    let some = parquet_files(&layout::corp_findings(&out, CORP));
    assert!(some.iter().all(|p| p
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("date=")));
}

#[test]
fn scan_of_an_archive_pulled_without_rules_finds_what_the_pipeline_would_and_survives_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("rules.toml"), RULES).unwrap();
    let v1 = version(RULES);
    // Three incremental pulls without rules: several files per day.
    for n in [1000, 2000, 3000] {
        demo(cwd, n, false);
    }
    let out = cwd.join("archive");
    assert!(findings(&out).is_empty());
    let expected = brute_force(&out);

    // A scan limited to a day range screens only those days.
    let days: BTreeSet<String> = parquet_files(&layout::corp_messages(&out, CORP))
        .iter()
        .map(|p| {
            let d = p
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            d.trim_start_matches("date=").to_owned()
        })
        .collect();
    let first_day = days.iter().next().unwrap().clone();
    let o = run(
        &[
            "scan",
            "--out",
            "archive",
            "--rules",
            "rules.toml",
            "--from",
            &first_day,
            "--to",
            &first_day,
            "--json",
        ],
        cwd,
    );
    let one: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let scanned_first = one["corps"][0]["files_scanned"].as_u64().unwrap();
    assert!(scanned_first >= 1);
    let found = findings(&out);
    assert!(found
        .iter()
        .all(|(s, _, _)| expected.iter().any(|(e, _)| e == s)));

    // The rest, then compaction merges screened files: a scan after it has nothing to do.
    scan_json(cwd, "rules.toml");
    assert_eq!(without_version(&findings(&out), &v1), expected);
    run(&["compact", "--out", "archive"], cwd);
    let after = scan_json(cwd, "rules.toml");
    assert_eq!(after["corps"][0]["files_scanned"], 0, "{after}");
    assert_eq!(without_version(&findings(&out), &v1), expected);
}

#[test]
fn a_scan_killed_at_any_step_finishes_on_the_next_run_without_duplicates() {
    for step in ["written", "journaled", "published"] {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        std::fs::write(cwd.join("rules.toml"), RULES).unwrap();
        demo(cwd, 3000, false);
        let out = cwd.join("archive");
        let expected = brute_force(&out);
        let o = Command::new(BIN)
            .args(["scan", "--out", "archive", "--rules", "rules.toml"])
            .env(wecom_archive::scan::FAULT_ENV, step)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{step}: the fault did not fire");
        scan_json(cwd, "rules.toml");
        // `findings` fails on a row written twice.
        assert_eq!(
            without_version(&findings(&out), &version(RULES)),
            expected,
            "{step}"
        );
        let again = scan_json(cwd, "rules.toml");
        assert_eq!(again["corps"][0]["files_scanned"], 0, "{step}");
    }
}

#[test]
fn pull_applies_the_configs_rules_and_refuses_a_bad_rules_file_before_pulling() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir(cwd.join("conf")).unwrap();
    std::fs::write(cwd.join("conf/rules.toml"), RULES).unwrap();
    // `rules` is resolved against the config file's folder.
    std::fs::write(
        cwd.join("conf/wecom-archive.toml"),
        format!(
            "out = \"../archive\"\nrules = \"rules.toml\"\n\n[[corp]]\ncorp_id = \"{CORP}\"\n\
             source = \"sim\"\nsim_messages = 1500\n"
        ),
    )
    .unwrap();
    run(
        &[
            "pull",
            "--once",
            "--config",
            "conf/wecom-archive.toml",
            "-q",
        ],
        cwd,
    );
    let out = cwd.join("archive");
    let expected = brute_force(&out);
    assert!(!expected.is_empty());
    assert_eq!(without_version(&findings(&out), &version(RULES)), expected);

    // A rule that does not compile: refused at start, naming the file, the rule and the key.
    std::fs::write(
        cwd.join("conf/rules.toml"),
        "[[rule]]\nid = \"idcard\"\nseverity = \"warn\"\nregex = ['(\\d{6}']\n",
    )
    .unwrap();
    let cfg = std::fs::read_to_string(cwd.join("conf/wecom-archive.toml")).unwrap();
    std::fs::write(
        cwd.join("conf/wecom-archive.toml"),
        cfg.replace("sim_messages = 1500", "sim_messages = 2000"),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["pull", "--once", "--config", "conf/wecom-archive.toml"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rules.toml") && err.contains("idcard") && err.contains("regex"),
        "{err}"
    );
    let store = wecom_archive::state::StateStore::open(&layout::state_path(&out)).unwrap();
    assert_eq!(
        store.checkpoint(CORP).unwrap(),
        Some(1500),
        "nothing was pulled"
    );
}
