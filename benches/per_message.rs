//! The whole per-message path (base64 → RSA unwrap → DecryptData → JSON → Arrow append),
//! next to the raw unwrap alone, so that their ratio is measured in one run.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::unwrap::WrapKey;
use wecom_archive::model::schema::ChatBatchBuilder;
use wecom_archive::pipeline::transform::decode;
use wecom_archive::source::sim::encrypt_record;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

const TEXT: &str = r#"{"msgid":"1048362912304877130_1714029001","action":"send","from":"zhangsan","tolist":["wmQx3aDwAAa1b2c3"],"roomid":"","msgtime":1714029001123,"msgtype":"text","text":{"content":"您好，合同已发您邮箱，请查收。如有问题随时联系我，谢谢！"}}"#;

fn per_message(c: &mut Criterion) {
    let wrap = WrapKey::from_pem(&fixture("rsa_test_pub.pem")).unwrap();
    let mut keys = Keyring::default();
    keys.add_pem(1, fixture("rsa_test_priv.pem").as_bytes())
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let rec = encrypt_record(&mut rng, &wrap, 1, 1, "m1", TEXT.as_bytes());

    let mut g = c.benchmark_group("per_message");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_unwrap", |b| {
        b.iter(|| keys.unwrap(1, &rec.encrypt_random_key).unwrap())
    });
    let mut builder = ChatBatchBuilder::with_capacity(4096);
    g.bench_function("whole_path", |b| {
        b.iter(|| {
            let row = decode(&keys, None, &rec).unwrap();
            builder.append(row.seq, row.publickey_ver, &row.plaintext, &row.message);
            if builder.len() == 4096 {
                builder.finish();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
