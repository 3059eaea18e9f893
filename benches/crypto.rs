//! RSA unwrap per backend, and native DecryptData by message size.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;
use wecom_archive::crypto::keyring::Keyring;
use wecom_archive::crypto::message::{decrypt, encrypt, Framing};
use wecom_archive::crypto::unwrap::{Backend, WrapKey};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

fn unwrap(c: &mut Criterion) {
    let wrap = WrapKey::from_pem(&fixture("rsa_test_pub.pem")).unwrap();
    // A realistic encrypt_key: 88 base64 chars.
    let erk = wrap.wrap(&[b'A'; 88]);
    let mut g = c.benchmark_group("rsa_unwrap");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    for &backend in Backend::available() {
        let mut keys = Keyring::new(backend);
        keys.add_pem(1, fixture("rsa_test_priv.pem").as_bytes())
            .unwrap();
        g.bench_function(BenchmarkId::from_parameter(backend.name()), |b| {
            b.iter(|| keys.unwrap(1, &erk).unwrap())
        });
    }
    g.finish();
}

fn decrypt_data(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut g = c.benchmark_group("decrypt_data");
    g.sample_size(50).measurement_time(Duration::from_secs(3));
    for size in [300usize, 10 * 1024] {
        let pt: Vec<u8> =
            std::iter::repeat(b"{\"text\":\"hello \xe4\xbd\xa0\xe5\xa5\xbd\"}".as_slice())
                .flatten()
                .copied()
                .take(size)
                .collect();
        // Same framing as the SDK timing anchor in the spec (pre_len=10, s_len=20, end_len=10).
        let framing = Framing {
            pre_len: Some(10),
            s_len: Some(20),
            end_len: Some(10),
        };
        let e = encrypt(&mut rng, &[b'k'; 32], &pt, &framing);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| decrypt(e.encrypt_key.as_bytes(), e.encrypt_msg.as_bytes()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, unwrap, decrypt_data);
criterion_main!(benches);
