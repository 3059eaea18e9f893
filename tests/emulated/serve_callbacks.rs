//! `serve`'s callback side end to end, in process, against the WeCom emulator: real encrypted
//! callbacks (including the shared vectors), URL verification, suite tickets, authorization
//! events, msgaudit_notify coalescing, duplicates and bad input.

use std::sync::Arc;

use crate::common::serve::*;
use crate::common::*;
use serde_json::Value;
use wecom_archive::api::service::{AUTH_INFO_PATH, PERMANENT_CODE_V2_PATH};
use wecom_archive::auth::providers::SUITE_TOKEN_PATH;
use wecom_archive::clock::ManualClock;
use wecom_archive::emulator::sender::{
    auth_change_xml, create_auth_xml, msgaudit_notify_xml, reset_permanent_code_xml,
    suite_ticket_xml, CallbackSender, SignedRequest,
};
use wecom_archive::emulator::Emulator;

const NOW: i64 = 1_800_000_000;

async fn emulator(clock: &Arc<ManualClock>) -> Emulator {
    Emulator::start(world(), clock.clone()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shared_vector_is_verified_or_accepted() {
    let vectors: Value =
        serde_json::from_str(include_str!("../../fixtures/callback.json")).unwrap();
    let mut checked = 0;
    let mut rejected = 0;
    let all = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .chain(vectors["official_vectors"].as_array().unwrap());
    for v in all {
        let kind = v["kind"].as_str().unwrap();
        if kind != "post" && kind != "get_echostr" {
            continue;
        }
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let (token, key, rid) = (s("token"), s("encoding_aes_key"), s("receiveid"));
        let ts: i64 = s("timestamp").parse().unwrap();
        let plaintext = v["plaintext"]
            .as_str()
            .or(v["decrypted"]["msg"].as_str())
            .unwrap_or_default()
            .to_owned();
        let command = plaintext.contains("<InfoType>");
        // One server per vector, configured with the vector's token, key and receiveid, on a
        // clock standing at the vector's timestamp.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), &token).unwrap();
        std::fs::write(dir.path().join("k"), &key).unwrap();
        std::fs::write(dir.path().join("s"), "suite-secret").unwrap();
        let route = if command {
            format!(
                "[suite]\nsuite_id = \"{rid}\"\nsecret_file = \"s\"\n[callback]\nlisten = \"127.0.0.1:0\"\n\
                 [callback.suite]\ncommand_path = \"/callback\"\ntoken_file = \"t\"\naes_key_file = \"k\"\n\
                 verify_receiveids = [\"{rid}\"]\n"
            )
        } else {
            format!(
                "[callback]\nlisten = \"127.0.0.1:0\"\n[callback.app]\npath = \"/callback\"\ncorpid = \"{rid}\"\n\
                 token_file = \"t\"\naes_key_file = \"k\"\n"
            )
        };
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, format!("out = \"archive\"\n{route}")).unwrap();
        let clock = Arc::new(ManualClock::new(ts));
        let running = start(&cfg, clock, Some(GatedPuller::new(true))).await;
        let base = format!("http://{}", running.addr());
        let http = reqwest::Client::new();
        let (path_q, body) = match v["http"].as_str() {
            Some(line) => (
                line.split_whitespace().nth(1).unwrap().to_owned(),
                s("post_body"),
            ),
            // Official vectors: build the request from their fields.
            None => {
                let enc = percent_encoding::utf8_percent_encode(
                    v["encrypt"].as_str().unwrap(),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string();
                let q = format!(
                    "/callback?msg_signature={}&timestamp={}&nonce={}",
                    s("msg_signature"),
                    s("timestamp"),
                    s("nonce")
                );
                if kind == "post" {
                    (
                        q,
                        format!(
                            "<xml><ToUserName><![CDATA[{rid}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
                            s("encrypt")
                        ),
                    )
                } else {
                    (format!("{q}&echostr={enc}"), String::new())
                }
            }
        };
        let url = format!("{base}{path_q}");
        let r = if kind == "post" {
            http.post(url).body(body).send().await.unwrap()
        } else {
            http.get(url).send().await.unwrap()
        };
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let name = s("name");
        // Every vector authenticates and decrypts. The crypto-only vectors whose plaintext is
        // no WeCom callback (empty, JSON, `<xml>` without MsgType / InfoType) are then refused
        // as malformed; the real callbacks are answered.
        let expect_reject = if kind == "get_echostr" {
            None
        } else if !plaintext.starts_with("<xml>") {
            Some("bad_xml")
        } else if !plaintext.contains("<MsgType>") && !command {
            Some("bad_event")
        } else {
            None
        };
        if let Some(result) = expect_reject {
            assert_eq!((status, text.trim()), (400, result), "{name}");
            assert_eq!(running.metrics().callbacks(result), 1, "{name}");
            running.shutdown().await;
            checked += 1;
            rejected += 1;
            continue;
        }
        assert_eq!(status, 200, "{name}: {text}");
        if kind == "get_echostr" {
            assert_eq!(text, plaintext, "{name}");
            assert_eq!(running.metrics().callbacks("verified"), 1, "{name}");
        } else {
            if command {
                assert_eq!(text, "success", "{name}");
            }
            let m = running.metrics();
            assert_eq!(
                m.callbacks("accepted") + m.callbacks("ignored"),
                1,
                "{name}: {}",
                m.render(ts)
            );
            if plaintext.contains("msgaudit_notify") || plaintext.contains("suite_ticket") {
                assert_eq!(m.callbacks("accepted"), 1, "{name}");
            }
        }
        running.shutdown().await;
        checked += 1;
    }
    assert_eq!(checked, 21, "every post / get vector with its own server");
    assert_eq!(rejected, 8, "the crypto-only plaintexts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_on_every_route() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "", "");
    let running = start(&cfg, clock, Some(GatedPuller::new(true))).await;
    let (app, suite) = senders(&running);
    let r = app
        .send_get(&app.verify_request(APP_PATH, SIM_CORP, "1616140317555161061", NOW))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "1616140317555161061"));
    // Suite URLs are verified with the provider's corpid (or the suite id).
    for (path, rid) in [
        (COMMAND_PATH, PROVIDER),
        (DATA_PATH, PROVIDER),
        (COMMAND_PATH, SUITE),
    ] {
        let r = suite
            .send_get(&suite.verify_request(path, rid, "42", NOW))
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "42"), "{path} {rid}");
    }
    // An authorized corp's id is not a valid receiveid for the GET check.
    let r = suite
        .send_get(&suite.verify_request(DATA_PATH, AUTH_CORP, "42", NOW))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(running.metrics().callbacks("verified"), 4);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_ticket_create_auth_duplicates_and_cancel_auth() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "", "");
    let running = start(&cfg, clock.clone(), Some(GatedPuller::new(true))).await;
    let (_, suite) = senders(&running);
    let m = running.metrics().clone();

    // WeCom pushes a new ticket; the emulator now accepts only that one.
    emu.state().set_suite_ticket(SUITE, "pushed-ticket-2");
    let r = suite
        .post(
            COMMAND_PATH,
            SUITE,
            &suite_ticket_xml(SUITE, "pushed-ticket-2", NOW),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    // An older push delivered late does not replace it.
    suite
        .post(
            COMMAND_PATH,
            SUITE,
            &suite_ticket_xml(SUITE, "old-ticket", NOW - 600),
            NOW,
        )
        .await
        .unwrap();
    eventually("two tickets handled", || m.events("suite_ticket") == 2).await;
    let (t, ts) = running.state().lock().suite_ticket(SUITE).unwrap().unwrap();
    assert_eq!((t.expose(), ts), ("pushed-ticket-2", NOW));

    // create_auth: the auth code is exchanged with the suite token made from the stored ticket.
    let code = emu.state().issue_auth_code(SUITE, "wwnewcorp0000001");
    let xml = create_auth_xml(SUITE, &code, NOW);
    let r = suite.post(COMMAND_PATH, SUITE, &xml, NOW).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    eventually("permanent code stored", || {
        m.events("permanent_code_stored") == 1
    })
    .await;
    let corp = running
        .state()
        .lock()
        .auth_corp("wwnewcorp0000001")
        .unwrap()
        .unwrap();
    assert!(corp.enabled);
    assert!(corp.permanent_code.unwrap().expose().starts_with("emuPC"));
    assert_eq!(corp.suite_id, SUITE);
    assert_eq!(emu.calls(SUITE_TOKEN_PATH), 1);
    assert_eq!(emu.calls(PERMANENT_CODE_V2_PATH), 1);
    assert_eq!(m.token_refreshes("suite"), 1);

    // WeCom retries the same create_auth (new Encrypt, nonce and timestamp, same plaintext):
    // answered, but the single-use code is not exchanged again.
    clock.advance(3);
    let r = suite
        .post(COMMAND_PATH, SUITE, &xml, NOW + 3)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    eventually("duplicate seen", || m.callbacks("duplicate") == 1).await;
    assert_eq!(emu.calls(PERMANENT_CODE_V2_PATH), 1);
    assert_eq!(m.events("create_auth"), 1);

    // The new corp's data callbacks are now accepted…
    let r = suite
        .post(
            DATA_PATH,
            "wwnewcorp0000001",
            &msgaudit_notify_xml("wwnewcorp0000001", NOW),
            NOW + 3,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // change_auth re-reads the authorization with the stored permanent code.
    let change = auth_change_xml("change_auth", SUITE, "wwnewcorp0000001", NOW + 3);
    let r = suite
        .post(COMMAND_PATH, SUITE, &change, NOW + 3)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    eventually("authorization re-read", || m.events("auth_info_read") == 1).await;
    assert_eq!(emu.calls(AUTH_INFO_PATH), 1);
    // reset_permanent_code: the new auth code is exchanged once more (no AuthCorpId in the
    // event: the corp comes from the exchange).
    let code2 = emu.state().issue_auth_code(SUITE, "wwnewcorp0000001");
    let reset = reset_permanent_code_xml(SUITE, &code2, NOW + 3);
    let r = suite
        .post(COMMAND_PATH, SUITE, &reset, NOW + 3)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    eventually("reset handled", || m.events("permanent_code_stored") == 2).await;
    assert_eq!(emu.calls(PERMANENT_CODE_V2_PATH), 2);
    assert_eq!(m.events("reset_permanent_code"), 1);

    // Nothing secret in the Debug output of what the server holds.
    let corp = running
        .state()
        .lock()
        .auth_corp("wwnewcorp0000001")
        .unwrap()
        .unwrap();
    let pc = corp.permanent_code.clone().unwrap();
    let dbg = format!("{corp:?} {running:?} {:?}", running.state());
    for secret in [
        pc.expose(),
        "pushed-ticket-2",
        code.as_str(),
        SUITE_SECRET,
        SUITE_TOKEN,
        SUITE_AES,
    ] {
        assert!(!dbg.contains(secret), "{dbg}");
    }

    // …until it cancels: disabled, permanent code forgotten, its data callbacks rejected.
    let cancel = auth_change_xml("cancel_auth", SUITE, "wwnewcorp0000001", NOW + 3);
    let r = suite
        .post(COMMAND_PATH, SUITE, &cancel, NOW + 3)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    eventually("corp disabled", || m.events("corp_disabled") == 1).await;
    let corp = running
        .state()
        .lock()
        .auth_corp("wwnewcorp0000001")
        .unwrap()
        .unwrap();
    assert!(corp.permanent_code.is_none());
    let r = suite
        .post(
            DATA_PATH,
            "wwnewcorp0000001",
            &msgaudit_notify_xml("wwnewcorp0000001", NOW + 1),
            NOW + 3,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_msgaudit_notify_burst_gives_exactly_one_pull() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "", "");
    let puller = GatedPuller::new(false);
    let running = start(&cfg, clock.clone(), Some(puller.clone())).await;
    let (app, _) = senders(&running);
    let m = running.metrics().clone();
    // The fallback poll's first tick pulls at start; that pull is now blocked in flight.
    eventually("initial pull running", || puller.pulls() == 1).await;

    // A burst of 25 distinct notifies during the pull.
    for i in 0..25 {
        let r = app
            .post(
                APP_PATH,
                SIM_CORP,
                &msgaudit_notify_xml(SIM_CORP, NOW + i),
                NOW,
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, ""));
    }
    eventually("25 notifies scheduled", || {
        m.notifies(SIM_CORP, "queued") == 1 && m.notifies(SIM_CORP, "coalesced") == 24
    })
    .await;
    puller.set_open(true);
    eventually("pulls finished", || {
        !running.scheduler().busy() && m.pulls(SIM_CORP) == 2
    })
    .await;
    // Exactly one follow-up pull for the whole burst.
    assert_eq!(puller.pulls(), 2);

    // A burst while idle: the first notify starts a pull, the rest queue exactly one more.
    puller.set_open(false);
    for i in 0..10 {
        app.post(
            APP_PATH,
            SIM_CORP,
            &msgaudit_notify_xml(SIM_CORP, NOW + 100 + i),
            NOW,
        )
        .await
        .unwrap();
    }
    eventually("10 more scheduled", || {
        m.notifies(SIM_CORP, "started") == 2
            && m.notifies(SIM_CORP, "queued") == 2
            && m.notifies(SIM_CORP, "coalesced") == 32
    })
    .await;
    puller.set_open(true);
    eventually("idle again", || {
        !running.scheduler().busy() && m.pulls(SIM_CORP) == 4
    })
    .await;
    assert_eq!(puller.pulls(), 4);

    // A retried notify (same plaintext) is a duplicate: no pull.
    let xml = msgaudit_notify_xml(SIM_CORP, NOW + 500);
    app.post(APP_PATH, SIM_CORP, &xml, NOW).await.unwrap();
    eventually("notify scheduled", || m.notifies(SIM_CORP, "started") == 3).await;
    eventually("idle", || !running.scheduler().busy()).await;
    app.post(APP_PATH, SIM_CORP, &xml, NOW + 1).await.unwrap();
    eventually("duplicate seen", || m.callbacks("duplicate") == 1).await;
    eventually("idle", || !running.scheduler().busy()).await;
    assert_eq!(puller.pulls(), 5);
    let text = m.render(NOW);
    assert!(
        text.contains("wecom_archive_pulls_total{corp=\"wwsimA\",outcome=\"ok\"} 5"),
        "{text}"
    );
    running.shutdown().await;
}

/// A request with its signature replaced.
fn resigned(req: &SignedRequest, sig: &str) -> SignedRequest {
    let mut r = req.clone();
    let start = r.path_and_query.find("msg_signature=").unwrap() + "msg_signature=".len();
    r.path_and_query.replace_range(start..start + 40, sig);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_the_server_keeps_serving() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &emu.base_url(),
        "max_body_bytes = 4096\ntimestamp_window_secs = 300",
        "",
    );
    let running = start(&cfg, clock.clone(), Some(GatedPuller::new(true))).await;
    let (app, suite) = senders(&running);
    let base = format!("http://{}", running.addr());
    let http = reqwest::Client::new();
    let m = running.metrics().clone();
    let notify = msgaudit_notify_xml(SIM_CORP, NOW);
    let good = app.post_request(APP_PATH, SIM_CORP, &notify, NOW);
    let other = CallbackSender::new("otherToken", APP_AES, &base);
    let encrypt_of = |s: &CallbackSender, plaintext: &str, rid: &str| {
        // A correctly signed envelope around arbitrary plaintext.
        s.post_request(APP_PATH, rid, plaintext, NOW)
    };
    let huge = {
        let mut r = good.clone();
        r.body = format!(
            "<xml><Pad>{}</Pad>{}</xml>",
            "x".repeat(8000),
            &r.body[5..r.body.len() - 6]
        );
        r
    };
    let no_encrypt = {
        let mut r = good.clone();
        r.body = "<xml><ToUserName>wwsimA</ToUserName></xml>".into();
        r
    };
    let not_xml = {
        let mut r = good.clone();
        r.body = "this is not xml <".into();
        r
    };
    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"boom\">]><xml><MsgType>event</MsgType><Event>&e;</Event></xml>";
    let posts: Vec<(&str, SignedRequest, u16, &str)> = vec![
        (
            "wrong signature",
            resigned(&good, &"0".repeat(40)),
            403,
            "bad_signature",
        ),
        (
            "upper-case signature",
            {
                let sig = good.path_and_query.split("msg_signature=").nth(1).unwrap()[..40]
                    .to_uppercase();
                resigned(&good, &sig)
            },
            403,
            "bad_signature",
        ),
        (
            "signed with another token",
            other.post_request(APP_PATH, SIM_CORP, &notify, NOW),
            403,
            "bad_signature",
        ),
        (
            "stale timestamp",
            app.post_request(APP_PATH, SIM_CORP, &notify, NOW - 301),
            403,
            "stale_timestamp",
        ),
        (
            "future timestamp",
            app.post_request(APP_PATH, SIM_CORP, &notify, NOW + 301),
            403,
            "stale_timestamp",
        ),
        (
            "receiveid of another corp",
            app.post_request(APP_PATH, "wwintruder", &notify, NOW),
            403,
            "bad_receiveid",
        ),
        ("oversized body", huge, 413, "too_large"),
        ("envelope without Encrypt", no_encrypt, 400, "bad_xml"),
        ("envelope not XML", not_xml, 400, "bad_xml"),
        (
            "plaintext not XML",
            encrypt_of(&app, "<xml><MsgType>", SIM_CORP),
            400,
            "bad_xml",
        ),
        (
            "plaintext with a DTD",
            encrypt_of(&app, doctype, SIM_CORP),
            400,
            "bad_xml",
        ),
        (
            "plaintext without a type",
            encrypt_of(&app, "<xml><Foo>1</Foo></xml>", SIM_CORP),
            400,
            "bad_event",
        ),
        (
            "suite_ticket without its ticket",
            {
                suite.post_request(COMMAND_PATH, SUITE, "<xml><SuiteId>wwsuite000000001</SuiteId><InfoType>suite_ticket</InfoType><TimeStamp>1</TimeStamp></xml>", NOW)
            },
            400,
            "bad_event",
        ),
        (
            "suite_ticket of another suite",
            suite.post_request(
                COMMAND_PATH,
                SUITE,
                &suite_ticket_xml("wwothersuite", "t", NOW),
                NOW,
            ),
            403,
            "bad_receiveid",
        ),
        (
            "command event for another receiveid",
            suite.post_request(
                COMMAND_PATH,
                "wwothersuite",
                &suite_ticket_xml(SUITE, "t", NOW),
                NOW,
            ),
            403,
            "bad_receiveid",
        ),
        (
            "data callback from an unknown corp",
            suite.post_request(
                DATA_PATH,
                "wwunknown",
                &msgaudit_notify_xml("wwunknown", NOW),
                NOW,
            ),
            403,
            "bad_receiveid",
        ),
        (
            "unknown path",
            {
                let mut r = good.clone();
                r.path_and_query = r.path_and_query.replace(APP_PATH, "/nope");
                r
            },
            404,
            "not_found",
        ),
        (
            "missing nonce",
            {
                let mut r = good.clone();
                r.path_and_query = r.path_and_query.replace("&nonce=", "&x=");
                r
            },
            400,
            "bad_request",
        ),
        (
            "timestamp not a number",
            {
                let mut r = good.clone();
                r.path_and_query = r.path_and_query.replace("timestamp=", "timestamp=x");
                r
            },
            400,
            "bad_request",
        ),
    ];
    for (name, req, status, result) in &posts {
        let before = m.callbacks(result);
        let r = app.send_post(req).await.unwrap();
        assert_eq!(r.status, *status, "{name}: {}", r.body);
        assert_eq!(r.body.trim(), *result, "{name}");
        assert_eq!(m.callbacks(result), before + 1, "{name}");
        // Still serving: a valid callback right after each bad one is answered.
        let r = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
    let r = http
        .put(format!("{base}{}", good.path_and_query))
        .body(good.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // Nothing was stored or queued by any of them.
    assert_eq!(m.callbacks("accepted"), 0);
    assert!(running
        .state()
        .lock()
        .suite_ticket(SUITE)
        .unwrap()
        .is_none());
    assert!(running
        .state()
        .lock()
        .suite_ticket("wwothersuite")
        .unwrap()
        .is_none());

    // An authentic event serve does not handle is acknowledged (no pointless WeCom retries).
    let contact = "<xml><SuiteId>wwsuite000000001</SuiteId><InfoType>change_contact</InfoType><TimeStamp>1</TimeStamp></xml>";
    let r = suite.post(COMMAND_PATH, SUITE, contact, NOW).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    assert_eq!(m.callbacks("ignored"), 1);

    // And the real thing still works.
    let r = app.send_post(&good).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(m.callbacks("accepted"), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_auth_stops_a_corps_pulls_across_restarts_until_it_authorizes_again() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "", "");
    let puller = GatedPuller::new(true);
    let running = start(&cfg, clock.clone(), Some(puller.clone())).await;
    let (app, suite) = senders(&running);
    let m = running.metrics().clone();
    eventually("start-up pull", || m.pulls(SIM_CORP) == 1).await;
    emu.state().set_suite_ticket(SUITE, "t-1");
    suite
        .post(
            COMMAND_PATH,
            SUITE,
            &suite_ticket_xml(SUITE, "t-1", NOW),
            NOW,
        )
        .await
        .unwrap();
    // The simulated corp authorizes the suite, then cancels.
    let code = emu.state().issue_auth_code(SUITE, SIM_CORP);
    suite
        .post(
            COMMAND_PATH,
            SUITE,
            &create_auth_xml(SUITE, &code, NOW),
            NOW,
        )
        .await
        .unwrap();
    eventually("authorized", || {
        running
            .state()
            .lock()
            .auth_corp(SIM_CORP)
            .unwrap()
            .is_some()
    })
    .await;
    let cancel = auth_change_xml("cancel_auth", SUITE, SIM_CORP, NOW);
    suite.post(COMMAND_PATH, SUITE, &cancel, NOW).await.unwrap();
    eventually("disabled", || {
        running.scheduler().corps() == vec![(SIM_CORP.to_string(), false)]
    })
    .await;
    // A notify for it is answered but pulls nothing.
    let r = app
        .post(
            APP_PATH,
            SIM_CORP,
            &msgaudit_notify_xml(SIM_CORP, NOW + 1),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    eventually("notify ignored", || {
        m.render(NOW)
            .contains("wecom_archive_notifies_total{corp=\"wwsimA\",outcome=\"ignored\"} 1")
    })
    .await;
    assert_eq!(puller.pulls(), 1);
    running.shutdown().await;

    // Still disabled after a restart (the start-up poll skips it)…
    let running = start(&cfg, clock.clone(), Some(puller.clone())).await;
    let (app, suite) = senders(&running);
    let m = running.metrics().clone();
    assert_eq!(
        running.scheduler().corps(),
        vec![(SIM_CORP.to_string(), false)]
    );
    // …until it authorizes the suite again.
    let code = emu.state().issue_auth_code(SUITE, SIM_CORP);
    suite
        .post(
            COMMAND_PATH,
            SUITE,
            &create_auth_xml(SUITE, &code, NOW + 5),
            NOW + 5,
        )
        .await
        .unwrap();
    eventually("re-enabled", || {
        running.scheduler().corps() == vec![(SIM_CORP.to_string(), true)]
    })
    .await;
    app.post(
        APP_PATH,
        SIM_CORP,
        &msgaudit_notify_xml(SIM_CORP, NOW + 6),
        NOW + 6,
    )
    .await
    .unwrap();
    eventually("pulled again", || m.pulls(SIM_CORP) == 1).await;
    assert_eq!(puller.pulls(), 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_so_wecom_retries_and_recovers() {
    let clock = Arc::new(ManualClock::new(NOW));
    let emu = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &emu.base_url(), "queue_capacity = 1", "");
    let running = start(&cfg, clock.clone(), Some(GatedPuller::new(true))).await;
    let (app, _) = senders(&running);
    let m = running.metrics().clone();
    // Hold the state database (from another thread): the handler blocks on its first batch
    // and the queue fills up.
    let state = running.state().clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = state.lock();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    locked_rx.recv().unwrap();
    // A burst: one event is being recorded (blocked), one waits in the queue, the rest find
    // it full. None can be stored, so none is answered 200.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let app = app.clone();
        set.spawn(async move {
            let r = app
                .post(
                    APP_PATH,
                    SIM_CORP,
                    &msgaudit_notify_xml(SIM_CORP, NOW + i),
                    NOW,
                )
                .await
                .unwrap();
            (r.status, r.body.trim().to_owned())
        });
    }
    let mut statuses = Vec::new();
    while let Some(r) = set.join_next().await {
        statuses.push(r.unwrap());
    }
    let full = statuses
        .iter()
        .filter(|(s, b)| *s == 503 && b == "queue_full")
        .count();
    let waited = statuses
        .iter()
        .filter(|(s, b)| *s == 503 && b == "store_timeout")
        .count();
    assert!(full >= 3 && waited <= 2, "{statuses:?}");
    assert_eq!(full + waited, 5, "{statuses:?}");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    // Those that were queued are stored and handled once the database is free (their
    // retries will be duplicates); new callbacks are answered 200 again.
    eventually("queued ones handled", || {
        m.events("msgaudit_notify") == waited as u64
    })
    .await;
    let r = app
        .post(
            APP_PATH,
            SIM_CORP,
            &msgaudit_notify_xml(SIM_CORP, NOW + 10),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    eventually("handled", || {
        m.events("msgaudit_notify") == waited as u64 + 1
    })
    .await;
    assert_eq!(m.callbacks("queue_full"), full as u64);
    running.shutdown().await;
}
