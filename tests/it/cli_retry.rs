//! `retry-dead-letters`: after the missing key is added, dead letters become rows, exactly once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use wecom_archive::sink::inventory::scan;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

fn run(args: &[&str], out: &Path) -> String {
    let o = Command::new(BIN)
        .args(args)
        .arg("--out")
        .arg(out)
        .env("WECOM_ARCHIVE_LOG", "error")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{args:?}: {text}");
    text
}

#[test]
fn adding_the_missing_key_recovers_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let corp = "wwretry";
    // Every 100th record is damaged; those with seq/100 % 3 == 1 claim key version 99 but were
    // wrapped with key 2 only above a third of the archive (seq > 400): 700 and 1000.
    run(
        &[
            "demo",
            "--messages",
            "1200",
            "--corrupt-every",
            "100",
            "--corp-id",
            corp,
        ],
        &out,
    );
    let before = scan(&out).unwrap();
    let damaged: BTreeSet<u64> = (1..=12).map(|i| i * 100).collect();
    assert_eq!(
        before.dead_seqs.iter().copied().collect::<BTreeSet<_>>(),
        damaged
    );

    let v2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rsa_test_v2_pkcs8.pem");
    let key = format!("99={}", v2.display());
    let text = run(&["retry-dead-letters", "--corp", corp, "--key", &key], &out);
    assert!(text.contains("recovered 2 records"), "{text}");

    let after = scan(&out).unwrap();
    assert_eq!(after.duplicate_seqs(), Vec::<u64>::new());
    let rows: BTreeSet<u64> = after.seqs.iter().copied().collect();
    let dead: BTreeSet<u64> = after.dead_seqs.iter().copied().collect();
    let recovered: BTreeSet<u64> = [700, 1000].into();
    assert!(recovered.is_subset(&rows));
    assert_eq!(dead, damaged.difference(&recovered).copied().collect());
    assert_eq!(rows.union(&dead).count(), 1200);
    assert_eq!(after.temporaries, 0);

    // Again: nothing more to recover, nothing duplicated.
    let text = run(&["retry-dead-letters", "--corp", corp, "--key", &key], &out);
    assert!(text.contains("recovered 0 records"), "{text}");
    let again = scan(&out).unwrap();
    assert_eq!(again.seqs, after.seqs);
    assert_eq!(again.dead_seqs, after.dead_seqs);
}
