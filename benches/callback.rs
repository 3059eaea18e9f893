//! WXBizMsgCrypt throughput: verify + decrypt of a typical event, and encrypt.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wecom_archive::crypto::msgcrypt::MsgCrypt;

const TOKEN: &str = "tok3nSelfBuilt";
const KEY: &str = "XVq3xNL6A3C7eyC6YDrGdnGVNjvBpABlKGOdcUCXhSi";
const RID: &str = "wwa1b2c3d4e5f60718";
const TS: &str = "1700000000";
const NONCE: &str = "1372623149";

/// A change_contact event of about 500 bytes, the typical size of a callback body.
fn event() -> Vec<u8> {
    let mut xml = String::from(
        "<xml><ToUserName><![CDATA[wwa1b2c3d4e5f60718]]></ToUserName>\
         <FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime>\
         <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
         <ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>\
         <Name><![CDATA[张三]]></Name><Department><![CDATA[1,2,3]]></Department>\
         <Mobile><![CDATA[13800000000]]></Mobile><Email><![CDATA[zhangsan@example.com]]></Email>",
    );
    while xml.len() < 480 {
        xml.push_str("<Extra><![CDATA[x]]></Extra>");
    }
    xml.push_str("</xml>");
    xml.into_bytes()
}

fn bench_callback(c: &mut Criterion) {
    let crypto = MsgCrypt::new(TOKEN, KEY).expect("valid key");
    let msg = event();
    let encrypt = crypto.encrypt(&msg, RID);
    let signature = crypto.signature(TS, NONCE, &encrypt);

    let mut group = c.benchmark_group("callback");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(msg.len() as u64));

    group.bench_function("verify_and_decrypt_500B", |b| {
        b.iter(|| {
            crypto
                .verify_and_decrypt(
                    black_box(&signature),
                    black_box(TS),
                    black_box(NONCE),
                    black_box(&encrypt),
                    &[RID],
                )
                .expect("valid callback")
        })
    });
    group.bench_function("encrypt_500B", |b| {
        b.iter(|| crypto.encrypt(black_box(&msg), black_box(RID)))
    });
    group.bench_function("reply_xml_500B", |b| {
        b.iter(|| crypto.reply_xml(black_box(&msg), RID, TS, NONCE))
    });
    group.finish();
}

criterion_group!(benches, bench_callback);
criterion_main!(benches);
