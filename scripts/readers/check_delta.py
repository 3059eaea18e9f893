#!/usr/bin/env python3
"""Proves the Delta tables under OUT readable, and exactly once, by readers that share no code.

    check_delta.py OUT [--expect CORP=N ...] [--storage-option KEY=VALUE ...]

OUT is a local folder, a file:// URL or s3://bucket/prefix; the tables are OUT/messages,
OUT/dead_letters and OUT/findings (the last only exists when rules were given). Every table that
exists is read by:
  deltalake     the Python delta-rs package (DeltaTable(...).to_pyarrow_table())
  polars        polars.read_delta
  independent   this file: it parses _delta_log itself (_last_checkpoint, the checkpoint Parquet,
                then every later NNNN.json commit in order), applies add/remove to get the live
                files, reads them with pyarrow and adds the partition columns from partitionValues
  duckdb        delta_scan, when its extension can be installed (else "skipped: <reason>")
and the readers must agree on the row count and on the multiset of (corp_id, seq) of each table.
Then, per corp:
  --expect CORP=N   every seq 1..N appears exactly once in messages.seq + dead_letters.seq;
  the latest txn (appId wecom-archive/<corp>) of messages equals the largest seq of the corp in
  messages + dead_letters, and no table holds a row past its own latest txn version.
  --expect-vacuumed  no table holds a data file that its latest version does not list (after a
  vacuum with retention 0; a crash before a commit leaves such files behind).
Exits 1 naming the table, corp and seq of the first disagreements; 2 on a usage error.

S3: storage options come from --storage-option and from the environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP); none is ever printed.
Test hook: CHECK_DELTA_DROP_FILE=<substring> makes the independent reader skip the live files
whose path contains it, so that the self-test can show what a reader disagreement looks like.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import sys
import urllib.parse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

TABLES = ("messages", "dead_letters", "findings")
APP_PREFIX = "wecom-archive/"
ENV_OPTIONS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")
# Disagreements printed per check: enough to locate a fault, short enough to read.
SHOWN = 10


class Failure(Exception):
    """A check that did not hold; the message names the table, corp and seq."""


# ---------------------------------------------------------------------------------------------
# Locations


class Location:
    """OUT as the three views need it: a URI for delta-rs/Polars/DuckDB, a pyarrow filesystem."""

    def __init__(self, out: str, options: dict[str, str]):
        self.options = options
        parsed = urllib.parse.urlparse(out)
        if parsed.scheme == "s3":
            self.is_s3 = True
            self.uri = out.rstrip("/")
            self.base = (parsed.netloc + "/" + parsed.path.strip("/")).rstrip("/")
            self.fs = s3_filesystem(options)
        elif parsed.scheme in ("", "file"):
            path = urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else out
            path = os.path.abspath(path)
            self.is_s3 = False
            self.uri = path
            self.base = path
            self.fs = pafs.LocalFileSystem()
        else:
            raise Failure(f"OUT {out!r}: only local folders, file:// and s3:// URLs are supported")

    def table_uri(self, table: str) -> str:
        return f"{self.uri}/{table}"

    def table_base(self, table: str) -> str:
        return f"{self.base}/{table}"

    def exists(self, table: str) -> bool:
        info = self.fs.get_file_info(f"{self.table_base(table)}/_delta_log")
        return info.type == pafs.FileType.Directory


def s3_filesystem(options: dict[str, str]) -> pafs.S3FileSystem:
    """pyarrow's own S3 client (not delta-rs's object_store), pointed at the same endpoint."""
    get = lambda key: options.get(key) or options.get(key.lower())  # noqa: E731
    kwargs = {}
    if get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = get("AWS_ACCESS_KEY_ID")
        kwargs["secret_key"] = get("AWS_SECRET_ACCESS_KEY")
    if get("AWS_REGION"):
        kwargs["region"] = get("AWS_REGION")
    endpoint = get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urllib.parse.urlparse(endpoint)
        if url.scheme:
            kwargs["scheme"] = url.scheme
            kwargs["endpoint_override"] = url.netloc
        else:
            kwargs["endpoint_override"] = endpoint
        # Local servers (moto, MinIO) serve every bucket on one host.
        kwargs["force_virtual_addressing"] = False
    return pafs.S3FileSystem(**kwargs)


# ---------------------------------------------------------------------------------------------
# The independent reader


class LogState:
    """What the log says at its latest version: live files, partition columns, latest txns."""

    def __init__(self):
        self.version = -1
        self.checkpoint = None
        self.commits_read = 0
        self.unreferenced: list[str] = []  # data files on storage that the latest version does not list
        self.live: dict[str, dict] = {}  # path -> add action
        self.txns: dict[str, int] = {}  # appId -> version
        self.partition_columns: list[str] = []
        self.schema: dict | None = None
        self.protocol: dict | None = None

    def apply(self, kind: str, action: dict, where: str):
        if kind == "add":
            if action.get("deletionVector"):
                raise Failure(f"{where}: add {action['path']} has a deletion vector, which this reader does not apply")
            self.live[action["path"]] = action
        elif kind == "remove":
            self.live.pop(action["path"], None)
        elif kind == "txn":
            self.txns[action["appId"]] = int(action["version"])
        elif kind == "metaData":
            self.partition_columns = list(action.get("partitionColumns") or [])
            self.schema = json.loads(action["schemaString"])
        elif kind == "protocol":
            self.protocol = action


def read_log(loc: Location, table: str) -> LogState:
    """Replays _delta_log: the last checkpoint (if any), then each later commit in order."""
    fs, log = loc.fs, f"{loc.table_base(table)}/_delta_log"
    state = LogState()
    commits = {}
    for info in fs.get_file_info(pafs.FileSelector(log)):
        name = info.base_name
        if name.endswith(".json") and name[:-5].isdigit():
            commits[int(name[:-5])] = info.path
    start = 0
    last = f"{log}/_last_checkpoint"
    if fs.get_file_info(last).type == pafs.FileType.File:
        with fs.open_input_stream(last) as f:
            hint = json.loads(f.read().decode())
        v = int(hint["version"])
        parts = hint.get("parts")
        if parts:
            paths = [f"{log}/{v:020d}.checkpoint.{i:010d}.{parts:010d}.parquet" for i in range(1, parts + 1)]
        else:
            paths = [f"{log}/{v:020d}.checkpoint.parquet"]
        for path in paths:
            apply_checkpoint(fs, path, state)
        state.version, state.checkpoint, start = v, v, v + 1
    later = sorted(k for k in commits if k >= start)
    if not later and state.version < 0:
        raise Failure(f"{table}: {log} has neither a checkpoint nor a commit")
    expected = start
    for v in later:
        if v != expected:
            raise Failure(f"{table}: the log jumps from version {expected - 1} to {v} (commit {expected:020d}.json missing)")
        with fs.open_input_stream(commits[v]) as f:
            for n, line in enumerate(f.read().decode().splitlines(), 1):
                if not line.strip():
                    continue
                action = json.loads(line)
                for kind, body in action.items():
                    state.apply(kind, body, f"{table} commit {v} line {n}")
        state.version = v
        state.commits_read += 1
        expected = v + 1
    return state


def apply_checkpoint(fs, path: str, state: LogState):
    """A checkpoint is a Parquet file with one action per row (one struct column per kind)."""
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise Failure(f"_last_checkpoint names {path}, which does not exist")
    with fs.open_input_file(path) as f:
        rows = pq.read_table(f).to_pylist()
    # Order within a checkpoint carries no meaning: reconcile adds against removes (tombstones).
    adds, removes = [], set()
    for row in rows:
        for kind in ("protocol", "metaData", "txn"):
            if row.get(kind):
                body = dict(row[kind])
                if kind == "metaData":
                    body["partitionColumns"] = list(body.get("partitionColumns") or [])
                state.apply(kind, body, path)
        if row.get("add"):
            add = dict(row["add"])
            pv = add.get("partitionValues")
            add["partitionValues"] = dict(pv) if isinstance(pv, list) else (pv or {})
            adds.append(add)
        if row.get("remove"):
            removes.add(row["remove"]["path"])
    for add in adds:
        if add["path"] not in removes:
            state.apply("add", add, path)


DELTA_TO_ARROW = {
    "string": pa.string(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "byte": pa.int8(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


def partition_value(raw, delta_type: str):
    if raw is None:
        return None
    if delta_type == "date":
        return dt.date.fromisoformat(raw)
    if delta_type in ("long", "integer", "short", "byte"):
        return int(raw)
    if delta_type == "boolean":
        return raw == "true"
    return raw


def unreferenced_files(loc: Location, table: str, state: LogState) -> list[str]:
    """Parquet files under the table that its latest version does not list: files a crash left
    before its commit, or files removed (OPTIMIZE, a rewrite) that vacuum has not deleted yet."""
    base = loc.table_base(table)
    live = {urllib.parse.unquote(p) for p in state.live}
    found = []
    for info in loc.fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        rel = info.path[len(base) + 1:]
        if info.type == pafs.FileType.File and rel.endswith(".parquet") and not rel.startswith("_delta_log/"):
            if rel not in live:
                found.append(rel)
    return sorted(found)


def read_independent(loc: Location, table: str) -> tuple[pa.Table, LogState]:
    state = read_log(loc, table)
    state.unreferenced = unreferenced_files(loc, table, state)
    types = {f["name"]: f["type"] for f in (state.schema or {}).get("fields", [])}
    drop = os.environ.get("CHECK_DELTA_DROP_FILE")
    pieces = []
    for rel, add in sorted(state.live.items()):
        if drop and drop in rel:
            continue
        if "://" in rel:
            parsed = urllib.parse.urlparse(rel)
            path = urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else parsed.netloc + urllib.parse.unquote(parsed.path)
        else:
            path = f"{loc.table_base(table)}/{urllib.parse.unquote(rel)}"
        try:
            with loc.fs.open_input_file(path) as f:
                data = pq.read_table(f)
        except (OSError, FileNotFoundError) as e:
            raise Failure(f"{table}: live file {rel} (version {state.version}) cannot be read: {e}") from None
        pvs = add.get("partitionValues") or {}
        for col in state.partition_columns:
            if col in data.column_names:
                raise Failure(f"{table}: data file {rel} holds the partition column {col!r} (Delta keeps it in the log only)")
            kind = types.get(col, "string")
            value = partition_value(pvs.get(col), kind)
            data = data.append_column(col, pa.array([value] * data.num_rows, type=DELTA_TO_ARROW.get(kind, pa.string())))
        pieces.append(data)
    if not pieces:
        return pa.table({"corp_id": pa.array([], pa.string()), "seq": pa.array([], pa.int64())}), state
    return pa.concat_tables(pieces, promote_options="permissive"), state


# ---------------------------------------------------------------------------------------------
# The other readers


def read_deltalake(loc: Location, table: str) -> pa.Table:
    from deltalake import DeltaTable

    t = DeltaTable(loc.table_uri(table), storage_options=loc.options or None)
    return t.to_pyarrow_table()


def read_polars(loc: Location, table: str) -> pa.Table:
    import polars as pl

    return pl.read_delta(loc.table_uri(table), storage_options=loc.options or None).to_arrow()


def packaged_extension(name: str, version: str) -> str | None:
    """The DuckDB extension shipped by the PyPI package duckdb-extension-<name>, if it is installed
    and built for this DuckDB version (an extension loads only into the version it was built for)."""
    import importlib.util

    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, "extensions", f"v{version}", f"{name}.duckdb_extension")
    return path if os.path.isfile(path) else None


class DuckDB:
    """delta_scan, when the extension loads: from the duckdb-extension-delta package when it matches
    the installed DuckDB, else by INSTALL delta (a download from DuckDB's extension site)."""

    def __init__(self, loc: Location):
        self.con = None
        self.skipped = None
        self.source = None
        try:
            import duckdb

            con = duckdb.connect()
            version = duckdb.__version__.lstrip("v")
            sources = []
            # httpfs holds DuckDB's S3 secrets; delta_scan needs it for s3:// tables.
            for name in ("httpfs", "delta") if loc.is_s3 else ("delta",):
                packaged = packaged_extension(name, version)
                if packaged:
                    con.execute(f"LOAD '{packaged}'")
                    sources.append(f"{name} from duckdb-extension-{name}")
                else:
                    con.execute(f"INSTALL {name}")
                    con.execute(f"LOAD {name}")
                    sources.append(f"{name} by INSTALL")
            self.source = f"duckdb {duckdb.__version__}, " + ", ".join(sources)
            if loc.is_s3:
                o = {k.upper(): v for k, v in loc.options.items()}
                endpoint = urllib.parse.urlparse(o.get("AWS_ENDPOINT_URL", ""))
                con.execute(
                    "CREATE SECRET s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, USE_SSL ?, URL_STYLE 'path')",
                    [o.get("AWS_ACCESS_KEY_ID", ""), o.get("AWS_SECRET_ACCESS_KEY", ""), o.get("AWS_REGION", "us-east-1"),
                     endpoint.netloc, endpoint.scheme != "http"],
                )
            self.con = con
        except Exception as e:  # any failure to install/load is a skip, not a fault of the tables
            self.skipped = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"

    def read(self, loc: Location, table: str) -> pa.Table:
        result = self.con.execute("SELECT corp_id, seq FROM delta_scan(?)", [loc.table_uri(table)]).arrow()
        # DuckDB 1.5 returns a RecordBatchReader here, 2.x a Table.
        return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


# ---------------------------------------------------------------------------------------------
# Comparison


def keys(t: pa.Table) -> collections.Counter:
    corp = t.column("corp_id").to_pylist()
    seq = t.column("seq").to_pylist()
    return collections.Counter(zip(corp, seq))


def describe(counter: collections.Counter, limit=SHOWN) -> str:
    items = sorted(counter.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] if kv[0][1] is not None else -1))
    text = ", ".join(f"corp {c} seq {s}" + (f" (x{n})" if n > 1 else "") for (c, s), n in items[:limit])
    return text + (f" … {len(items) - limit} more" if len(items) > limit else "")


def compare(table: str, reference: str, ref: collections.Counter, name: str, other: collections.Counter, errors: list):
    if ref == other:
        return
    only_ref, only_other = ref - other, other - ref
    msg = f"{table}: {name} disagrees with {reference} ({sum(other.values())} rows vs {sum(ref.values())})"
    if only_ref:
        msg += f"; {name} misses {describe(only_ref)}"
    if only_other:
        msg += f"; {name} has extra {describe(only_other)}"
    errors.append(msg)


def exactly_once(expect: dict[str, int], per_table: dict[str, collections.Counter], errors: list):
    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    where: dict[tuple, list] = collections.defaultdict(list)
    for table in ("messages", "dead_letters"):
        for (corp, seq), n in per_table.get(table, {}).items():
            if seq is None:
                continue
            seen[corp][seq] += n
            where[(corp, seq)].extend([table] * n)
    for corp, n in sorted(expect.items()):
        counts = seen.get(corp, collections.Counter())
        missing = [s for s in range(1, n + 1) if counts[s] == 0]
        dup = sorted(s for s, c in counts.items() if c > 1)
        beyond = sorted(s for s in counts if not 1 <= s <= n)
        if missing:
            errors.append(f"exactly once: corp {corp}: {len(missing)} of seq 1..{n} missing from messages and dead_letters: "
                          f"{', '.join(map(str, missing[:SHOWN]))}{' …' if len(missing) > SHOWN else ''}")
        if dup:
            errors.append(f"exactly once: corp {corp}: {len(dup)} seq more than once: "
                          + ", ".join(f"seq {s} in {'+'.join(where[(corp, s)])}" for s in dup[:SHOWN])
                          + (" …" if len(dup) > SHOWN else ""))
        if beyond:
            errors.append(f"exactly once: corp {corp}: seq outside 1..{n}: {', '.join(map(str, beyond[:SHOWN]))}"
                          f"{' …' if len(beyond) > SHOWN else ''}")


def txn_checks(logs: dict[str, LogState], per_table: dict[str, collections.Counter], errors: list) -> dict:
    """Per corp: messages' latest txn == max seq of messages + dead_letters; no row past its table's txn."""
    max_seq: dict[str, dict[str, int]] = {}
    for table, counter in per_table.items():
        for corp, seq in counter:
            if seq is not None:
                m = max_seq.setdefault(table, {})
                m[corp] = max(m.get(corp, seq), seq)
    overall: dict[str, int] = {}
    for table in ("messages", "dead_letters"):
        for corp, s in max_seq.get(table, {}).items():
            overall[corp] = max(overall.get(corp, s), s)
    versions = {t: {app[len(APP_PREFIX):]: v for app, v in st.txns.items() if app.startswith(APP_PREFIX)} for t, st in logs.items()}
    if "messages" in logs:
        for corp in sorted(set(overall) | set(versions["messages"])):
            txn, top = versions["messages"].get(corp), overall.get(corp)
            if txn != top:
                errors.append(f"txn: messages: corp {corp}: latest txn version (appId {APP_PREFIX}{corp}) is {txn}, "
                              f"but the largest seq in messages + dead_letters is {top}")
    for table, per_corp in max_seq.items():
        for corp, s in sorted(per_corp.items()):
            txn = versions.get(table, {}).get(corp)
            if txn is None or txn < s:
                errors.append(f"txn: {table}: corp {corp}: seq {s} is past the table's latest txn version {txn} "
                              f"(appId {APP_PREFIX}{corp}): a row no commit accounts for")
    return versions


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="local folder, file:// URL or s3://bucket/prefix holding messages/, dead_letters/, findings/")
    p.add_argument("--expect", action="append", default=[], metavar="CORP=N", help="every seq 1..N of CORP exactly once")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE", help="object_store option (S3)")
    p.add_argument("--expect-vacuumed", action="store_true",
                   help="fail when a table holds data files its latest version does not list (run after vacuum --retain-hours 0)")
    a = p.parse_args(argv)
    expect, options = {}, {k: os.environ[k] for k in ENV_OPTIONS if os.environ.get(k)}
    for item in a.expect:
        corp, _, n = item.partition("=")
        if not corp or not n.isdigit():
            p.error(f"--expect {item!r}: give CORP=N, e.g. --expect ww1=300")
        expect[corp] = int(n)
    for item in a.storage_option:
        key, eq, value = item.partition("=")
        if not eq:
            p.error(f"--storage-option {key!r}: give KEY=VALUE")
        options[key] = value
    return a.out, expect, options, a.expect_vacuumed


def main(argv=None) -> int:
    out, expect, options, vacuumed = parse_args(argv)
    try:
        loc = Location(out, options)
        tables = [t for t in TABLES if loc.exists(t)]
    except Failure as e:
        print(f"check_delta: FAILED: {e}", file=sys.stderr)
        return 1
    if "messages" not in tables:
        print(f"check_delta: FAILED: {out}/messages is not a Delta table (no _delta_log)", file=sys.stderr)
        return 1
    errors: list[str] = []
    duck = DuckDB(loc)
    readers = [("deltalake", read_deltalake), ("polars", read_polars)]
    if duck.con is not None:
        readers.append(("duckdb", duck.read))
    names = ["independent"] + [n for n, _ in readers]
    counts: dict[str, dict[str, object]] = {t: {} for t in tables}
    per_table: dict[str, collections.Counter] = {}
    logs: dict[str, LogState] = {}
    columns: dict[str, dict[str, list]] = {t: {} for t in tables}
    for table in tables:
        ref = None
        try:
            data, state = read_independent(loc, table)
            logs[table] = state
            ref = keys(data)
            per_table[table] = ref
            counts[table]["independent"] = data.num_rows
            columns[table]["independent"] = sorted(data.column_names)
        except Failure as e:
            errors.append(f"{table}: independent: {e}")
            counts[table]["independent"] = "error"
        except Exception as e:
            errors.append(f"{table}: independent reader failed: {type(e).__name__}: {e}")
            counts[table]["independent"] = "error"
        # The others read the table even when the independent reader could not: their errors say
        # whether the fault is in the table or in this script.
        for name, read in readers:
            try:
                other = read(loc, table)
            except Exception as e:
                errors.append(f"{table}: {name} could not read the table: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                counts[table][name] = "error"
                continue
            counts[table][name] = other.num_rows
            if name != "duckdb":
                columns[table][name] = sorted(other.column_names)
            if ref is not None:
                compare(table, "independent", ref, name, keys(other), errors)
        for name, cols in columns[table].items():
            if "independent" in columns[table] and cols != columns[table]["independent"]:
                diff = set(cols) ^ set(columns[table]["independent"])
                errors.append(f"{table}: {name} sees other columns than the independent reader: {sorted(diff)}")
    unread = [t for t in ("messages", "dead_letters") if t in tables and t not in per_table]
    if unread:
        # Without the table the per-corp checks would only repeat the read error as missing seqs.
        errors.append(f"exactly once and txn versions not checked: {' and '.join(unread)} could not be read")
        expect = {}
    exactly_once(expect, per_table, errors)
    if vacuumed:
        for table, st in logs.items():
            if st.unreferenced:
                errors.append(f"{table}: {len(st.unreferenced)} data files not in version {st.version} after vacuum: "
                              + ", ".join(st.unreferenced[:SHOWN]) + (" …" if len(st.unreferenced) > SHOWN else ""))
    versions = txn_checks(logs, per_table, errors) if "messages" in logs and not unread else {}

    print(f"check_delta: {out}")
    width = max(len(n) for n in names) + 2
    print("  " + "table".ljust(14) + "".join(n.rjust(width) for n in names) + "  log")
    for table in tables:
        st = logs.get(table)
        log = (f"v{st.version}, checkpoint {st.checkpoint if st.checkpoint is not None else '-'}, "
               f"{st.commits_read} json, {len(st.live)} files, {len(st.unreferenced)} unreferenced") if st else "-"
        print("  " + table.ljust(14) + "".join(str(counts[table].get(n, "-")).rjust(width) for n in names) + "  " + log)
    if duck.skipped:
        print(f"  duckdb delta_scan skipped: {duck.skipped}")
    else:
        print(f"  duckdb delta_scan: {duck.source}")
    for table, per_corp in versions.items():
        if per_corp:
            print(f"  txn {table}: " + ", ".join(f"{c}={v}" for c, v in sorted(per_corp.items())))
    for corp, n in sorted(expect.items()):
        print(f"  expect {corp}: seq 1..{n}")
    if errors:
        print(f"check_delta: FAILED ({len(errors)} problem{'s' if len(errors) > 1 else ''}):", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print("check_delta: OK (" + ", ".join(names) + " agree" + (", exactly once" if expect else "") + ", txn versions match)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
