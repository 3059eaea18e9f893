#!/usr/bin/env python3
"""Builds the seed corpora and dictionaries of the fuzz targets from fixtures/ (run by
scripts/fuzz.sh; the output is not committed). Each seed starts with the target's mode byte."""
import base64, glob, gzip, json, os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fx = os.path.join(root, "fixtures")
out = os.path.join(root, "fuzz", "corpus")


def seed(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def varint(v):
    v &= (1 << 64) - 1
    b = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v == 0:
            b.append(c)
            return bytes(b)
        b.append(c | 0x80)


dd = json.load(open(os.path.join(fx, "decryptdata.json")))
for v in dd["vectors"]:
    key, msg = (v["encrypt_key"] or "").encode(), (v["encrypt_chat_msg"] or "").encode()
    seed("decrypt_data", v["name"], b"\x00" + key + b"\n" + msg)
    p = v.get("params") or {}
    if "k1" in p:
        k1 = p["k1"].encode()
        info = b"\x0a" + varint(len(k1)) + k1 + b"\x10" + varint(p["pre_len"]) + b"\x18" + varint(p["end_len"]) + b"\x20" + varint(p["s_len"])
        seed("decrypt_data", v["name"] + "-info", b"\x01" + info)
        seed("decrypt_data", v["name"] + "-outer", b"\x02" + bytes([len(info) % 256]) + info[:255] + b"\x00" + msg)
        plain = base64.b64decode(v["expected"].get("plaintext_b64") or "")
        seed("decrypt_data", v["name"] + "-rt", b"\x03" + bytes([p["pre_len"] % 64, p["end_len"] % 64]) + p["s_len"].to_bytes(2, "little") + bytes(8) + bytes([len(k1) % 256]) + k1[:255] + plain)
    rk = v.get("encrypt_random_key")
    if rk:
        seed("rsa_unwrap", v["name"], b"\x00\x01" + rk.encode())
seed("rsa_unwrap", "wrapped", b"\x01" + bytes(range(256)) + b"\x00\x40\x01\x10")
seed("rsa_unwrap", "roundtrip", b"\x02" + b"0123456789abcdef" * 2)
for pem in glob.glob(os.path.join(fx, "*.pem")):
    seed("rsa_unwrap", os.path.basename(pem), b"\x03" + open(pem, "rb").read())

cb = json.load(open(os.path.join(fx, "callback.json")))
for v in cb["vectors"]:
    plain = v.get("plaintext", "").encode()
    seed("callback", v["name"] + "-plain", b"\x01" + plain)
    if v.get("post_body"):
        seed("callback", v["name"] + "-body", b"\x00" + v["post_body"].encode())
    rid = v.get("receiveid", "").encode()
    seed("callback", v["name"] + "-rt", b"\x02" + bytes([len(rid)]) + rid + b"\x0a1409659813\x0a1372623149\x00" + plain)
    seed("callback", v["name"] + "-aes", b"\x03" + bytes(16) + len(plain).to_bytes(4, "big") + plain + rid + bytes([4]) * 4)
    seed("callback", v["name"] + "-key", b"\x04" + bytes([len(v["token"])]) + v["token"].encode() + v["encoding_aes_key"].encode())

dump = open(os.path.join(fx, "sample_dump.jsonl"), "rb").read()
lines = dump.splitlines(keepends=True)
seed("dump_reader", "jsonl", b"\x00" + b"".join(lines[:4]))
seed("dump_reader", "jsonl-decode", b"\x04" + b"".join(lines[:2]))
recs = [json.loads(l) for l in lines[:3]]
seed("dump_reader", "page", b"\x00" + json.dumps({"errcode": 0, "errmsg": "ok", "chatdata": recs}, indent=1).encode())
seed("dump_reader", "page-decode", b"\x05" + json.dumps({"errcode": 0, "chatdata": recs[:1]}, indent=2).encode())
seed("dump_reader", "gzip-file", b"\x01" + gzip.compress(b"".join(lines[:3])))
seed("dump_reader", "gzip", b"\x02" + b"".join(lines[:3]))
seed("dump_reader", "gzip-cut", b"\x03\x07" + b"".join(lines[:3]))

for m in glob.glob(os.path.join(fx, "messages", "*.json")):
    seed("message_parse", os.path.basename(m), open(m, "rb").read())

# Dictionaries: the words the parsers look for.
os.makedirs(os.path.join(root, "fuzz", "dict"), exist_ok=True)
def dict_file(name, words):
    with open(os.path.join(root, "fuzz", "dict", name + ".dict"), "w") as f:
        for w in sorted(set(words)):
            esc = "".join(
                c if 32 <= ord(c) < 127 and c not in '"\\' else "".join("\\x%02X" % b for b in c.encode())
                for c in w)
            f.write('"%s"\n' % esc)
src = open(os.path.join(root, "src", "model", "message", "msgtype.rs")).read()
src += open(os.path.join(root, "src", "model", "message", "types.rs")).read()
json_words = set(re.findall(r'"([a-z_]{2,32})"', src)) | set(re.findall(r"pub (\w+):", src))
json_words |= {"msgid", "action", "from", "tolist", "roomid", "msgtime", "msgtype", "seq", "publickey_ver",
               "encrypt_random_key", "encrypt_chat_msg", "chatdata", "errcode", "errmsg", "send", "recall", "switch", "time"}
json_words = {'"%s":' % w for w in json_words} | {"{", "}", "[", "]", "null", "true", "false", "\\u0000", "\\ud800", "1e400", "\ufeff"}
dict_file("json", json_words)
xml_words = {"<xml>", "</xml>", "<![CDATA[", "]]>", "&amp;", "&lt;", "&#x", "&#", "<!DOCTYPE", "<?xml", "?>", "<!--", "-->", "/>",
             "InfoType", "MsgType", "Event", "SuiteId", "SuiteTicket", "TimeStamp", "AuthCode", "AuthCorpId", "State", "MsgId",
             "Encrypt", "MsgSignature", "Nonce", "ToUserName", "suite_ticket", "create_auth", "change_auth", "cancel_auth",
             "reset_permanent_code", "msgaudit_notify", "event"}
dict_file("xml", xml_words)
