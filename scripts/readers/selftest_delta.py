#!/usr/bin/env python3
"""Self-test of check_delta.py before the Rust Delta sink exists (run by selftest_delta.sh).

    selftest_delta.py LOCAL_DIR [S3_URI]

Writes, with the Python deltalake package, Delta tables in the layout the pipeline will produce
(OUT/messages, OUT/dead_letters, OUT/findings partitioned by corp_id (+ date), each commit carrying
the txn wecom-archive/<corp> = the highest seq it covers), with a checkpoint interval, an OPTIMIZE,
an explicit checkpoint, commits after it and a vacuum; checks that check_delta.py passes on it, then
corrupts copies (a duplicate seq, a removed file, rows past the txn version, a file hidden from one
reader, a deleted data file, a missing commit) and checks that it fails naming the table/corp/seq.
With DUCKDB_DELTA_PYTHON (a Python whose DuckDB loads the delta extension) the clean tables are
also checked by DuckDB's delta_scan. S3_URI (s3://bucket/prefix, with AWS_* in the environment) repeats the clean run and the duplicate
on the S3-compatible server, and races a stale delta-rs writer against a commit put behind its back:
with a txn of the same corp it must fail (CommitFailedError, version 1 kept), with another corp's it
must commit as the next version (appends do not conflict).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from decimal import Decimal

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

HERE = os.path.dirname(os.path.abspath(__file__))
CORPS = {"wwselftest1": 300, "wwselftest2": 200}
BATCH = 40
UTC = dt.timezone.utc

STR = pa.string()
MESSAGES = pa.schema([
    pa.field("seq", pa.int64(), False),
    pa.field("msgid", STR, False),
    pa.field("publickey_ver", pa.int32(), False),
    pa.field("action", STR, False),
    pa.field("from", STR),
    pa.field("tolist", pa.list_(pa.field("item", STR, False)), False),
    pa.field("roomid", STR),
    # Delta has no millisecond timestamps: delta-rs stores them as microseconds.
    pa.field("msgtime", pa.timestamp("us", tz="UTC")),
    pa.field("msgtype", STR, False),
    *[pa.field(n, STR) for n in ("content", "title", "sdkfileid", "md5sum")],
    pa.field("filesize", pa.int64()),
    pa.field("filename", STR),
    pa.field("fileext", STR),
    pa.field("play_length", pa.int32()),
    *[pa.field(n, STR) for n in ("link_url", "pre_msgid", "user")],
    pa.field("meetingid", pa.decimal128(20, 0)),
    pa.field("media_count", pa.int32(), False),
    pa.field("raw_json", STR, False),
    pa.field("conversation_id", STR),
    pa.field("chat_type", STR),
    pa.field("is_external_sender", pa.bool_(), False),
    pa.field("corp_id", STR, False),
    pa.field("date", pa.date32()),
])
FINDINGS = pa.schema([
    pa.field("seq", pa.int64(), False),
    pa.field("msgid", STR, False),
    pa.field("conversation_id", STR),
    pa.field("msgtime", pa.timestamp("us", tz="UTC")),
    pa.field("msgtype", STR, False),
    pa.field("from", STR),
    pa.field("rule_id", STR, False),
    pa.field("rule_set_version", STR, False),
    pa.field("severity", STR, False),
    pa.field("terms", pa.list_(pa.field("item", STR, False)), False),
    pa.field("snippet", STR, False),
    pa.field("corp_id", STR, False),
    pa.field("date", pa.date32()),
])
DEAD = pa.schema([
    pa.field("seq", pa.int64()),
    pa.field("msgid", STR),
    pa.field("line", pa.int64()),
    pa.field("error_kind", STR, False),
    pa.field("error", STR, False),
    pa.field("record", STR, False),
    pa.field("time", pa.timestamp("us", tz="UTC"), False),
    pa.field("corp_id", STR, False),
])


def msgtime(seq: int):
    """A few messages have no msgtime (date partition null); the rest span several days."""
    if seq % 23 == 0:
        return None
    return dt.datetime(2026, 11, 20, tzinfo=UTC) + dt.timedelta(hours=7 * seq)


def message_rows(corp: str, seqs) -> pa.Table:
    rows = []
    for s in seqs:
        t = msgtime(s)
        rows.append({
            "seq": s, "msgid": f"{corp}-m{s}", "publickey_ver": 1, "action": "send", "from": "alice",
            "tolist": ["bob"], "roomid": None, "msgtime": t, "msgtype": "text", "content": f"hello {s}",
            "title": None, "sdkfileid": None, "md5sum": None, "filesize": None, "filename": None, "fileext": None,
            "play_length": None, "link_url": None, "pre_msgid": None, "user": None,
            "meetingid": Decimal(18446744073709551615) if s % 29 == 0 else None, "media_count": 0,
            "raw_json": json.dumps({"msgid": f"{corp}-m{s}", "text": {"content": f"hello {s}"}}),
            "conversation_id": "single:alice:bob", "chat_type": "single", "is_external_sender": False,
            "corp_id": corp, "date": t.date() if t else None,
        })
    return pa.Table.from_pylist(rows, schema=MESSAGES)


def finding_rows(corp: str, seqs) -> pa.Table:
    rows = []
    for s in seqs:
        t = msgtime(s)
        rows.append({
            "seq": s, "msgid": f"{corp}-m{s}", "conversation_id": "single:alice:bob", "msgtime": t,
            "msgtype": "text", "from": "alice", "rule_id": "hello", "rule_set_version": "1", "severity": "low",
            "terms": ["hello"], "snippet": f"hello {s}", "corp_id": corp, "date": t.date() if t else None,
        })
    return pa.Table.from_pylist(rows, schema=FINDINGS)


def dead_rows(corp: str, seqs, unparsed_line=None) -> pa.Table:
    now = dt.datetime(2026, 12, 3, tzinfo=UTC)
    rows = [{"seq": s, "msgid": f"{corp}-m{s}", "line": None, "error_kind": "decrypt",
             "error": f"seq {s}: cannot decrypt", "record": json.dumps({"seq": s, "msgid": f"{corp}-m{s}"}),
             "time": now, "corp_id": corp} for s in seqs]
    if unparsed_line is not None:
        rows.append({"seq": None, "msgid": None, "line": unparsed_line, "error_kind": "parse",
                     "error": "not JSON", "record": "{not json", "time": now, "corp_id": corp})
    return pa.Table.from_pylist(rows, schema=DEAD)


class Writer:
    def __init__(self, out: str, options: dict | None):
        self.out, self.options = out.rstrip("/"), options

    def append(self, table: str, data: pa.Table, corp: str, version: int):
        partition_by = ["corp_id"] if table == "dead_letters" else ["corp_id", "date"]
        write_deltalake(
            f"{self.out}/{table}", data, mode="append", partition_by=partition_by, storage_options=self.options,
            # A checkpoint every 10 commits, as the pipeline will write them.
            configuration={"delta.checkpointInterval": "10"},
            commit_properties=CommitProperties(app_transactions=[Transaction(f"wecom-archive/{corp}", version)]),
        )

    def table(self, name: str) -> DeltaTable:
        return DeltaTable(f"{self.out}/{name}", storage_options=self.options)


def batches(corp: str, n: int):
    for lo in range(1, n + 1, BATCH):
        yield corp, list(range(lo, min(lo + BATCH - 1, n) + 1))


def build(out: str, options: dict | None):
    """The pipeline's commits, interleaving the two corps, with maintenance in between."""
    w = Writer(out, options)
    order = []
    gens = [batches(c, n) for c, n in CORPS.items()]
    while gens:
        for g in list(gens):
            try:
                order.append(next(g))
            except StopIteration:
                gens.remove(g)
    late = len(order) - 3  # the last three batches come after the OPTIMIZE and the checkpoint
    for i, (corp, seqs) in enumerate(order):
        if i == late:
            for name in ("messages", "dead_letters"):
                t = w.table(name)
                metrics = t.optimize.compact()
                t.create_checkpoint()
                print(f"  {name}: optimize removed {metrics['numFilesRemoved']} files, added "
                      f"{metrics['numFilesAdded']}; checkpoint at version {t.version()}")
        dead = [s for s in seqs if s % 17 == 0]
        live = [s for s in seqs if s % 17 != 0]
        top = seqs[-1]
        w.append("messages", message_rows(corp, live), corp, top)
        if dead or i == 0:
            w.append("dead_letters", dead_rows(corp, dead, unparsed_line=7 if i == 0 else None), corp, top)
        found = [s for s in live if s % 5 == 0]
        if found:
            w.append("findings", finding_rows(corp, found), corp, top)
    for name in ("messages", "dead_letters", "findings"):
        t = w.table(name)
        deleted = t.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        print(f"  {name}: version {t.version()}, vacuum deleted {len(deleted)} files")


CHECK = [sys.executable, os.path.join(HERE, "check_delta.py")]
EXPECT = [a for c, n in CORPS.items() for a in ("--expect", f"{c}={n}")]


def run_check(out: str, want_ok: bool, must_say: list[str] = (), env=None, python=None, extra=()) -> None:
    args = [out, *EXPECT, *extra]
    p = subprocess.run(([python, CHECK[1]] if python else CHECK) + args, capture_output=True, text=True, env=env)
    print(f"  $ {'(' + python + ') ' if python else ''}check_delta.py {' '.join(args)}  -> exit {p.returncode}")
    print("    " + (p.stdout + p.stderr).strip().replace("\n", "\n    "))
    if want_ok and p.returncode != 0:
        raise SystemExit("selftest: check_delta.py failed on a correct table set")
    if want_ok and python and "duckdb agree" not in p.stdout:
        raise SystemExit(f"selftest: {python} was meant to read the tables with DuckDB's delta_scan too")
    if not want_ok:
        if p.returncode != 1:
            raise SystemExit(f"selftest: check_delta.py exited {p.returncode} on a corrupted table set, wanted 1")
        for s in must_say:
            if s not in p.stderr:
                raise SystemExit(f"selftest: check_delta.py's message lacks {s!r}")


def live_file(out: str, table: str, corp: str) -> dict:
    """One live add of corp (largest first: it holds the most seqs after OPTIMIZE)."""
    adds = pa.table(DeltaTable(f"{out}/{table}").get_add_actions(flatten=True)).to_pylist()
    adds = [a for a in adds if a["partition.corp_id"] == corp]
    return max(adds, key=lambda a: a["size_bytes"])


def hand_commit(out: str, table: str, actions: list[dict]) -> None:
    t = DeltaTable(f"{out}/{table}")
    path = os.path.join(out, table, "_delta_log", f"{t.version() + 1:020d}.json")
    with open(path, "x") as f:
        f.write("\n".join(json.dumps(a) for a in actions) + "\n")


def corruptions(clean: str, scratch: str):
    def copy(name):
        dst = os.path.join(scratch, name)
        shutil.copytree(clean, dst)
        return dst

    c1, c2 = CORPS
    print(f"\n== corruption 1: seq 7 of {c1} written twice (a second commit, txn unchanged)")
    out = copy("dup")
    Writer(out, None).append("messages", message_rows(c1, [7]), c1, CORPS[c1])
    run_check(out, False, [f"corp {c1}: 1 seq more than once: seq 7 in messages+messages"])

    print(f"\n== corruption 2: a commit removes a live messages file of {c2} (every reader agrees: seqs lost)")
    out = copy("removed")
    add = live_file(out, "messages", c2)
    hand_commit(out, "messages", [{"remove": {
        "path": add["path"], "deletionTimestamp": int(time.time() * 1000), "dataChange": True,
        "extendedFileMetadata": True, "partitionValues": {"corp_id": c2, "date": add.get("partition.date") and str(add["partition.date"])},
        "size": add["size_bytes"]}}])
    run_check(out, False, [f"exactly once: corp {c2}:", "missing from messages and dead_letters"])

    print(f"\n== corruption 3: rows of {c1} past its txn version (seq 301..303 committed with txn 300)")
    out = copy("pasttxn")
    Writer(out, None).append("messages", message_rows(c1, [301, 302, 303]), c1, 300)
    run_check(out, False, [f"txn: messages: corp {c1}: latest txn version (appId wecom-archive/{c1}) is 300, "
                           f"but the largest seq in messages + dead_letters is 303", "seq outside 1..300"])

    print(f"\n== corruption 4: one messages file hidden from the independent reader (CHECK_DELTA_DROP_FILE)")
    out = copy("hidden")
    add = live_file(out, "messages", c1)
    env = dict(os.environ, CHECK_DELTA_DROP_FILE=urllib.parse.unquote(add["path"]))
    run_check(out, False, [f"messages: deltalake disagrees with independent", f"independent", f"corp {c1} seq"], env=env)

    print(f"\n== corruption 5: a live data file deleted from disk")
    out = copy("deleted")
    add = live_file(out, "dead_letters", c2)
    os.remove(os.path.join(out, "dead_letters", urllib.parse.unquote(add["path"])))
    run_check(out, False, ["dead_letters: independent: dead_letters: live file", "cannot be read"])

    print(f"\n== corruption 6: a data file no commit lists (a crash between writing it and the commit)")
    out = copy("stray")
    stray = os.path.join(out, "messages", f"corp_id={c1}", "date=2026-11-20", "part-00000-crashed.parquet")
    shutil.copy(os.path.join(out, "messages", urllib.parse.unquote(live_file(out, "messages", c1)["path"])), stray)
    run_check(out, True)  # readers ignore it: it is not in the log
    run_check(out, False, [f"messages: 1 data files not in version 15 after vacuum: corp_id={c1}/date=2026-11-20/part-00000-crashed.parquet"],
              extra=["--expect-vacuumed"])
    # delta-rs's default ("lite") vacuum deletes only files that a remove action names: a file that
    # no commit ever listed survives it; the "full" vacuum lists the storage and deletes it.
    t = DeltaTable(f"{out}/messages")
    lite = t.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    print(f"  vacuum (lite, the default) listed {len(lite)} files")
    run_check(out, False, ["part-00000-crashed.parquet"], extra=["--expect-vacuumed"])
    full = t.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)
    # Both list the tombstoned files too, although the first vacuum of the clean table deleted them.
    print(f"  vacuum full=True listed {len(full)} files, the crashed one among them: "
          f"{any('crashed' in f for f in full)} (lite: {any('crashed' in f for f in lite)})")
    run_check(out, True, extra=["--expect-vacuumed"])

    print(f"\n== corruption 7: the newest findings commit deleted (the log has a gap after the checkpoint)")
    out = copy("gap")
    t = DeltaTable(f"{out}/findings")
    # Write one more commit, then delete the one before it, so that a later commit survives the gap.
    Writer(out, None).append("findings", finding_rows(c1, [5]).slice(0, 0), c1, CORPS[c1])
    os.remove(os.path.join(out, "findings", "_delta_log", f"{t.version():020d}.json"))
    run_check(out, False, ["findings: independent: findings: the log jumps from version"])


def race(uri: str, options: dict):
    """What delta-rs does on this server when its snapshot is stale: another writer committed the
    next log version first (by a conditional put, If-None-Match: *, as object_store does)."""
    import boto3

    def rows(seqs, corp):
        return pa.table({"seq": pa.array(seqs, pa.int64()), "corp_id": [corp] * len(seqs)})

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = boto3.client("s3")
    outcomes = []
    for n, (mine, theirs) in enumerate([("a", "a"), ("a", "b")]):
        table = f"{uri.rstrip('/')}/race{n}"
        write_deltalake(table, rows([1], mine), partition_by=["corp_id"], storage_options=options)
        stale = DeltaTable(table, storage_options=options)
        actions = [{"txn": {"appId": f"wecom-archive/{theirs}", "version": 50}},
                   {"commitInfo": {"timestamp": 0, "operation": "WRITE", "operationParameters": {}}}]
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/race{n}/_delta_log/{1:020d}.json", IfNoneMatch="*",
                      Body="".join(json.dumps(a) + "\n" for a in actions).encode())
        try:
            write_deltalake(stale, rows([2], mine), mode="append", storage_options=options,
                            commit_properties=CommitProperties(app_transactions=[Transaction(f"wecom-archive/{mine}", 2)]))
            result = "committed"
        except Exception as e:
            result = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        fresh = DeltaTable(table, storage_options=options)
        their_v1 = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/race{n}/_delta_log/{1:020d}.json")["Body"].read()
        print(f"  stale writer of corp {mine}, the other commit's txn for corp {theirs}: {result}; table now at "
              f"version {fresh.version()}, txn {mine}={fresh.transaction_version(f'wecom-archive/{mine}')}, "
              f"version 1 {'kept' if b'version' in their_v1 and b'50' in their_v1 else 'OVERWRITTEN'}")
        outcomes.append((result, fresh.version()))
    if not (outcomes[0][0].startswith("CommitFailedError") and outcomes[0][1] == 1
            and outcomes[1] == ("committed", 2)):
        raise SystemExit(f"selftest: delta-rs race outcomes changed: {outcomes}")


def main():
    local = os.path.abspath(sys.argv[1])
    s3 = sys.argv[2] if len(sys.argv) > 2 else None
    clean = os.path.join(local, "clean")
    print(f"== local tables: {clean}")
    build(clean, None)
    run_check(clean, True, extra=["--expect-vacuumed"])
    print(f"\n== the same through a file:// URL")
    run_check("file://" + clean, True)
    duck = os.environ.get("DUCKDB_DELTA_PYTHON")
    if duck:
        print(f"\n== with DuckDB's delta_scan (the DuckDB and extensions of {duck})")
        run_check(clean, True, python=duck)
    corruptions(clean, local)
    if s3:
        keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")
        options = {k: os.environ[k] for k in keys if k in os.environ}
        out = s3.rstrip("/") + "/clean"
        print(f"\n== S3 tables: {out} (endpoint {options.get('AWS_ENDPOINT_URL')})")
        build(out, options)
        run_check(out, True, extra=["--expect-vacuumed"])
        if duck:
            run_check(out, True, python=duck)
        print(f"\n== S3 corruption: seq 7 of {list(CORPS)[0]} written twice")
        c1 = list(CORPS)[0]
        dup = s3.rstrip("/") + "/dup"
        build(dup, options)
        Writer(dup, options).append("messages", message_rows(c1, [7]), c1, CORPS[c1])
        run_check(dup, False, [f"corp {c1}: 1 seq more than once: seq 7 in messages+messages"])
        print("\n== S3 race: a writer whose snapshot is stale commits after another writer took the next version")
        race(s3.rstrip("/") + "/race", options)
    print("\nselftest_delta: OK")


if __name__ == "__main__":
    main()
