"""Proves that the common Parquet readers see a wecom-archive output tree as three tables.

Run by scripts/readers.sh on a `demo --rules examples/rules.toml` tree on which `media` has also run:

    python check.py --out DIR/wecom-archive-demo --demo-json demo.json --media-log media.txt \
        --rules examples/rules.toml

Five readers (pyarrow, pandas, Polars, DuckDB, PySpark) each open the table roots `messages`,
`media_files` and `findings` as directories with Hive partitioning, and must agree with what the
tool said it wrote and with each other: row counts, the partition columns `corp_id` and `date` (a
date where the reader infers one), the lake-compatible column types (the conversation columns and
the findings' `terms` list included), counts by `msgtype` and by `chat_type`, external senders,
min/max `msgtime`, a filter on `date`, the join of messages to media files, and of findings: counts
by (rule_id, severity), the one rule-set version, and the join findings -> messages on
(corp_id, seq) (one message per finding, same msgid). Independently, the findings files, read one
by one with pyarrow, are checked against the rules file (msgtypes filter, external scope). Then the
README's reader snippets (the code blocks marked `<!-- readers.sh: WHAT -->`) run verbatim from
DIR, so the README cannot drift from what the readers do. Every failure names the reader and the
mismatch; exit status 1."""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import re
import sqlite3
import sys
import time
import tomllib
import warnings
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

# The name the README's snippets use for the output root.
README_OUT = "wecom-archive-demo"
SCHEMA_VERSION_KEY = b"wecom_archive.schema_version"
# The messages table's types as every lake engine can hold them (no unsigned ints).
MESSAGE_TYPES = {
    "seq": "int64",
    "publickey_ver": "int32",
    "filesize": "int64",
    "play_length": "int32",
    "media_count": "int32",
    "meetingid": "decimal(20,0)",
    "msgtime": "timestamp",
    "conversation_id": "string",
    "chat_type": "string",
    "is_external_sender": "bool",
    "corp_id": "string",
    "date": "date",
}
# The findings table (src/compliance/findings.rs COLUMNS_DOC), every column.
FINDINGS_TYPES = {
    "seq": "int64",
    "msgid": "string",
    "conversation_id": "string",
    "msgtime": "timestamp",
    "msgtype": "string",
    "from": "string",
    "rule_id": "string",
    "rule_set_version": "string",
    "severity": "string",
    "terms": "list<string>",
    "snippet": "string",
    "corp_id": "string",
    "date": "date",
}
# External contacts' ids (docs/compliance.md); robots (wb…) are not external.
EXTERNAL_PREFIXES = ("wo", "wm")
MEDIA_TYPES = {"seq": "int64", "item_index": "int32", "size": "int64", "corp_id": "string"}
# pandas keeps Hive partition values as strings (pyarrow's default partitioning infers no dates).
DATE_AS_STRING = {"pandas"}

failures: list[str] = []


def fail(reader: str, what: str) -> None:
    failures.append(f"{reader}: {what}")
    print(f"FAIL {reader}: {what}", file=sys.stderr)


def check_equal(reader: str, what: str, got, want) -> None:
    if got != want:
        fail(reader, f"{what}: got {got!r}, expected {want!r}")


# ---------------------------------------------------------------- type names, one vocabulary


def arrow_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return arrow_kind(t.value_type)
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{arrow_kind(t.value_type)}>"
    return str(t)  # bool, int64, …


def duckdb_kind(t: str) -> str:
    t = t.upper()
    plain = {
        "BIGINT": "int64",
        "INTEGER": "int32",
        "SMALLINT": "int16",
        "UBIGINT": "uint64",
        "UINTEGER": "uint32",
        "HUGEINT": "int128",
        "DATE": "date",
        "VARCHAR": "string",
        "DOUBLE": "float64",
        "BOOLEAN": "bool",
    }
    if t in plain:
        return plain[t]
    if t.endswith("[]"):
        return f"list<{duckdb_kind(t[:-2])}>"
    if t.startswith("DECIMAL"):
        return "decimal" + t[len("DECIMAL") :].replace(" ", "")
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return t.lower()


def polars_kind(t) -> str:
    import polars as pl

    if isinstance(t, pl.Decimal):
        return f"decimal({t.precision},{t.scale})"
    if isinstance(t, pl.Datetime):
        return "timestamp"
    if isinstance(t, pl.List):
        return f"list<{polars_kind(t.inner)}>"
    names = {
        pl.Int64: "int64",
        pl.Int32: "int32",
        pl.UInt64: "uint64",
        pl.UInt32: "uint32",
        pl.Date: "date",
        pl.String: "string",
        pl.Categorical: "string",
        pl.Float64: "float64",
        pl.Boolean: "bool",
    }
    for k, v in names.items():
        if t == k:
            return v
    return str(t)


def pandas_kind(t) -> str:
    import pandas as pd

    if isinstance(t, pd.ArrowDtype):
        return arrow_kind(t.pyarrow_dtype)
    if isinstance(t, pd.CategoricalDtype):
        return "string"
    if isinstance(t, pd.StringDtype):
        return "string"
    if isinstance(t, pd.DatetimeTZDtype):
        return "timestamp"
    return str(t)


def spark_kind(t) -> str:
    from pyspark.sql import types as T

    if isinstance(t, T.DecimalType):
        return f"decimal({t.precision},{t.scale})"
    if isinstance(t, T.ArrayType):
        return f"list<{spark_kind(t.elementType)}>"
    names = {
        T.LongType: "int64",
        T.IntegerType: "int32",
        T.DateType: "date",
        T.StringType: "string",
        T.TimestampType: "timestamp",
        T.DoubleType: "float64",
        T.BooleanType: "bool",
    }
    return names.get(type(t), t.simpleString())


# ---------------------------------------------------------------- the readers

# Each reader returns: rows, types {column: kind}, by_msgtype, min_ms, max_ms, on_day, from_day,
# media_rows, media_types, media_by_status, join_rows; for the conversation columns by_chat_type
# {chat_type or None: rows} and external_senders (rows with is_external_sender); for the findings
# table findings_rows, findings_types, findings_by_rule {(rule_id, severity): rows},
# rule_set_versions (sorted distinct values) and, of the join findings -> messages on
# (corp_id, seq), findings_join (rows), findings_unjoined (findings without a message) and
# findings_msgid_differs (joined rows whose msgids differ). `day` is a partition date, as a date.


def read_pyarrow(out: Path, day: dt.date) -> dict:
    import pyarrow.compute as pc

    # pyarrow infers partition values as int32 or string, never a date: a schema says so.
    part = ds.partitioning(pa.schema([("corp_id", pa.string()), ("date", pa.date32())]), flavor="hive")
    t = pq.read_table(out / "messages", partitioning=part)
    by_type = t.group_by("msgtype").aggregate([("msgtype", "count")])
    mm = pc.min_max(t["msgtime"])
    d = t["date"]
    m = pq.read_table(out / "media_files", partitioning="hive")
    joined = t.select(["corp_id", "msgid"]).join(m.select(["corp_id", "msgid", "sdkfileid"]), ["corp_id", "msgid"], join_type="inner")
    by_status = m.group_by("status").aggregate([("status", "count")])
    # count_all: "count" would skip the null chat_type group's rows.
    by_chat = t.group_by("chat_type").aggregate([([], "count_all")])
    f = pq.read_table(out / "findings", partitioning=part)
    by_rule = f.group_by(["rule_id", "severity"]).aggregate([([], "count_all")])
    keys = ["corp_id", "seq"]
    fj = f.select([*keys, "msgid"]).join(t.select([*keys, "msgid"]), keys, join_type="inner", right_suffix="_m")
    return {
        "rows": t.num_rows,
        "types": {f.name: arrow_kind(f.type) for f in t.schema},
        "by_msgtype": dict(zip(by_type["msgtype"].to_pylist(), by_type["msgtype_count"].to_pylist())),
        "min_ms": mm["min"].cast(pa.int64()).as_py(),
        "max_ms": mm["max"].cast(pa.int64()).as_py(),
        "on_day": pc.sum(pc.equal(d, pa.scalar(day, pa.date32()))).as_py() or 0,
        "from_day": pc.sum(pc.greater_equal(d, pa.scalar(day, pa.date32()))).as_py() or 0,
        "media_rows": m.num_rows,
        "media_types": {f.name: arrow_kind(f.type) for f in m.schema},
        "media_by_status": dict(zip(by_status["status"].to_pylist(), by_status["status_count"].to_pylist())),
        "join_rows": joined.num_rows,
        "by_chat_type": dict(zip(by_chat["chat_type"].to_pylist(), by_chat["count_all"].to_pylist())),
        "external_senders": pc.sum(t["is_external_sender"].cast(pa.int64())).as_py() or 0,
        "findings_rows": f.num_rows,
        "findings_types": {c.name: arrow_kind(c.type) for c in f.schema},
        "findings_by_rule": {
            (r, s): n for r, s, n in zip(*(by_rule[c].to_pylist() for c in ("rule_id", "severity", "count_all")))
        },
        "rule_set_versions": sorted(pc.unique(f["rule_set_version"]).to_pylist()),
        "findings_join": fj.num_rows,
        "findings_unjoined": f.select(keys).join(t.select(keys), keys, join_type="left anti").num_rows,
        "findings_msgid_differs": pc.sum(pc.not_equal(fj["msgid"], fj["msgid_m"]).cast(pa.int64())).as_py() or 0,
    }


def read_pandas(out: Path, day: dt.date) -> dict:
    import pandas as pd

    # dtype_backend="pyarrow": nullable ints stay ints (numpy's default makes them float64).
    df = pd.read_parquet(out / "messages", dtype_backend="pyarrow")
    m = pd.read_parquet(out / "media_files", dtype_backend="pyarrow")
    f = pd.read_parquet(out / "findings", dtype_backend="pyarrow")
    # The partition column corp_id is categorical, with each table's own categories: as strings.
    keyed = lambda d, cols: d[cols].astype({"corp_id": str})  # noqa: E731
    fj = keyed(f, ["corp_id", "seq", "msgid"]).merge(keyed(df, ["corp_id", "seq", "msgid"]), on=["corp_id", "seq"],
                                                   how="left", suffixes=("", "_m"), indicator=True)
    inner = fj[fj["_merge"] == "both"]
    date = df["date"].astype(str)
    ms = df["msgtime"].astype("int64[pyarrow]")
    return {
        "rows": len(df),
        "types": {c: pandas_kind(t) for c, t in df.dtypes.items()},
        "by_msgtype": {k: int(v) for k, v in df["msgtype"].value_counts().items()},
        "min_ms": int(ms.min()),
        "max_ms": int(ms.max()),
        "on_day": int((date == day.isoformat()).sum()),
        "from_day": int((date >= day.isoformat()).sum()),
        "media_rows": len(m),
        "media_types": {c: pandas_kind(t) for c, t in m.dtypes.items()},
        "media_by_status": {k: int(v) for k, v in m["status"].value_counts().items()},
        "join_rows": len(
            df[["corp_id", "msgid"]].astype(str).merge(m[["corp_id", "msgid"]].astype(str), on=["corp_id", "msgid"])
        ),
        "by_chat_type": {
            (None if pd.isna(k) else k): int(v) for k, v in df["chat_type"].value_counts(dropna=False).items()
        },
        "external_senders": int(df["is_external_sender"].sum()),
        "findings_rows": len(f),
        "findings_types": {c: pandas_kind(t) for c, t in f.dtypes.items()},
        "findings_by_rule": {k: int(v) for k, v in f.groupby(["rule_id", "severity"]).size().items()},
        "rule_set_versions": sorted(f["rule_set_version"].unique().tolist()),
        "findings_join": len(inner),
        "findings_unjoined": int((fj["_merge"] == "left_only").sum()),
        "findings_msgid_differs": int((inner["msgid"] != inner["msgid_m"]).sum()),
    }


def read_polars(out: Path, day: dt.date) -> dict:
    import polars as pl

    lf = pl.scan_parquet(out / "messages", hive_partitioning=True)
    mf = pl.scan_parquet(out / "media_files", hive_partitioning=True)
    df = lf.collect()
    m = mf.collect()
    f = pl.scan_parquet(out / "findings", hive_partitioning=True).collect()
    keys = ["corp_id", "seq"]
    fj = f.select(*keys, "msgid").join(df.select(*keys, "msgid"), on=keys, how="inner", suffix="_m")
    agg = df.select(
        pl.col("msgtime").min().dt.epoch("ms").alias("min_ms"),
        pl.col("msgtime").max().dt.epoch("ms").alias("max_ms"),
        (pl.col("date") == day).sum().alias("on_day"),
        (pl.col("date") >= day).sum().alias("from_day"),
    ).row(0, named=True)
    by_type = df.group_by("msgtype").len()
    by_status = m.group_by("status").len()
    return {
        "rows": df.height,
        "types": {c: polars_kind(t) for c, t in df.schema.items()},
        "by_msgtype": dict(by_type.iter_rows()),
        "min_ms": agg["min_ms"],
        "max_ms": agg["max_ms"],
        "on_day": agg["on_day"],
        "from_day": agg["from_day"],
        "media_rows": m.height,
        "media_types": {c: polars_kind(t) for c, t in m.schema.items()},
        "media_by_status": dict(by_status.iter_rows()),
        "join_rows": df.join(m, on=["corp_id", "msgid"], how="inner").height,
        "by_chat_type": dict(df.group_by("chat_type").len().iter_rows()),
        "external_senders": df["is_external_sender"].sum(),
        "findings_rows": f.height,
        "findings_types": {c: polars_kind(t) for c, t in f.schema.items()},
        "findings_by_rule": {(r, s): n for r, s, n in f.group_by("rule_id", "severity").len().iter_rows()},
        "rule_set_versions": sorted(f["rule_set_version"].unique().to_list()),
        "findings_join": fj.height,
        "findings_unjoined": f.join(df, on=keys, how="anti").height,
        "findings_msgid_differs": fj.filter(pl.col("msgid") != pl.col("msgid_m")).height,
    }


def read_duckdb(out: Path, day: dt.date) -> dict:
    import duckdb

    c = duckdb.connect()
    # hive_types_autocast (on by default) makes date=YYYY-MM-DD a DATE.
    msgs = f"read_parquet('{out / 'messages'}', hive_partitioning=true)"
    media = f"read_parquet('{out / 'media_files'}', hive_partitioning=true)"
    finds = f"read_parquet('{out / 'findings'}', hive_partitioning=true)"
    one = lambda sql: c.execute(sql).fetchone()[0]  # noqa: E731
    agg = c.execute(
        f"SELECT count(*), epoch_ms(min(msgtime)), epoch_ms(max(msgtime)), "
        f"count(*) FILTER (WHERE date = ?), count(*) FILTER (WHERE date >= ?) FROM {msgs}",
        [day, day],
    ).fetchone()
    return {
        "rows": agg[0],
        "types": {r[0]: duckdb_kind(r[1]) for r in c.execute(f"DESCRIBE SELECT * FROM {msgs}").fetchall()},
        "by_msgtype": dict(c.execute(f"SELECT msgtype, count(*) FROM {msgs} GROUP BY 1").fetchall()),
        "min_ms": agg[1],
        "max_ms": agg[2],
        "on_day": agg[3],
        "from_day": agg[4],
        "media_rows": c.execute(f"SELECT count(*) FROM {media}").fetchone()[0],
        "media_types": {r[0]: duckdb_kind(r[1]) for r in c.execute(f"DESCRIBE SELECT * FROM {media}").fetchall()},
        "media_by_status": dict(c.execute(f"SELECT status, count(*) FROM {media} GROUP BY 1").fetchall()),
        "join_rows": c.execute(f"SELECT count(*) FROM {msgs} JOIN {media} USING (corp_id, msgid)").fetchone()[0],
        "by_chat_type": dict(c.execute(f"SELECT chat_type, count(*) FROM {msgs} GROUP BY 1").fetchall()),
        "external_senders": one(f"SELECT count(*) FROM {msgs} WHERE is_external_sender"),
        "findings_rows": one(f"SELECT count(*) FROM {finds}"),
        "findings_types": {r[0]: duckdb_kind(r[1]) for r in c.execute(f"DESCRIBE SELECT * FROM {finds}").fetchall()},
        "findings_by_rule": {
            (r, s): n for r, s, n in c.execute(f"SELECT rule_id, severity, count(*) FROM {finds} GROUP BY 1, 2").fetchall()
        },
        "rule_set_versions": [
            r[0] for r in c.execute(f"SELECT DISTINCT rule_set_version FROM {finds} ORDER BY 1").fetchall()
        ],
        "findings_join": one(f"SELECT count(*) FROM {finds} f JOIN {msgs} m USING (corp_id, seq)"),
        "findings_unjoined": one(f"SELECT count(*) FROM {finds} f ANTI JOIN {msgs} m USING (corp_id, seq)"),
        "findings_msgid_differs": one(
            f"SELECT count(*) FROM {finds} f JOIN {msgs} m USING (corp_id, seq) WHERE f.msgid <> m.msgid"
        ),
    }


def spark_session():
    # PySpark warns about pandas 3 when it starts; it matters only to Spark <-> pandas conversions,
    # which this check does not make (pandas reads the files itself).
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from pyspark.sql import SparkSession

    # Small and local: two cores, 1 GiB, no UI; timestamps shown in UTC like msgtime.
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("wecom-archive-readers")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_spark(out: Path, day: dt.date) -> dict:
    from pyspark.sql import functions as F

    spark = spark_session()
    # Spark infers partition column types: date=YYYY-MM-DD becomes a DateType.
    df = spark.read.parquet(str(out / "messages"))
    m = spark.read.parquet(str(out / "media_files"))
    f = spark.read.parquet(str(out / "findings"))
    keys = ["corp_id", "seq"]
    fj = f.select(*keys, "msgid").join(df.select(*keys, F.col("msgid").alias("msgid_m")), keys)
    agg = df.agg(
        F.count(F.lit(1)),
        F.unix_millis(F.min("msgtime")),
        F.unix_millis(F.max("msgtime")),
        F.sum((F.col("date") == F.lit(day)).cast("int")),
        F.sum((F.col("date") >= F.lit(day)).cast("int")),
    ).first()
    return {
        "rows": agg[0],
        "types": {f.name: spark_kind(f.dataType) for f in df.schema.fields},
        "by_msgtype": {r[0]: r[1] for r in df.groupBy("msgtype").count().collect()},
        "min_ms": agg[1],
        "max_ms": agg[2],
        "on_day": agg[3] or 0,
        "from_day": agg[4] or 0,
        "media_rows": m.count(),
        "media_types": {f.name: spark_kind(f.dataType) for f in m.schema.fields},
        "media_by_status": {r[0]: r[1] for r in m.groupBy("status").count().collect()},
        "join_rows": df.join(m, ["corp_id", "msgid"]).count(),
        "by_chat_type": {r[0]: r[1] for r in df.groupBy("chat_type").count().collect()},
        "external_senders": df.filter(F.col("is_external_sender")).count(),
        "findings_rows": f.count(),
        "findings_types": {c.name: spark_kind(c.dataType) for c in f.schema.fields},
        "findings_by_rule": {(r[0], r[1]): r[2] for r in f.groupBy("rule_id", "severity").count().collect()},
        "rule_set_versions": sorted(r[0] for r in f.select("rule_set_version").distinct().collect()),
        "findings_join": fj.count(),
        "findings_unjoined": f.join(df, keys, "left_anti").count(),
        "findings_msgid_differs": fj.filter(F.col("msgid") != F.col("msgid_m")).count(),
    }


READERS = {
    "pyarrow": read_pyarrow,
    "pandas": read_pandas,
    "polars": read_polars,
    "duckdb": read_duckdb,
    "spark": read_spark,
}


# ---------------------------------------------------------------- what the tool says it wrote


def written_by_demo(path: Path) -> tuple[int, dict[str, int], int]:
    """Rows the demo's JSON summary says it wrote, its rows per date= partition, and its findings."""
    summary = json.loads(path.read_text())
    if "findings" not in summary:
        sys.exit(f"check: no `findings` in {path}: does this binary screen messages (--rules)?")
    in_files = sum(f["rows"] for f in summary.get("findings_files", []))
    if in_files != summary["findings"]:
        fail("demo", f"summary's findings_files add up to {in_files} rows, findings says {summary['findings']}")
    per_date: dict[str, int] = {}
    for f in summary.get("files", []):
        m = re.search(r"date=([^/]+)/", f["path"])
        if m:
            per_date[m.group(1)] = per_date.get(m.group(1), 0) + f["rows"]
    if sum(f["rows"] for f in summary.get("files", [])) != summary["written"]:
        fail("demo", f"summary's files add up to {sum(f['rows'] for f in summary['files'])} rows, written says {summary['written']}")
    return summary["written"], per_date, summary["findings"]


def media_references(log: Path, state: Path) -> int:
    """Media references the `media` run reported, checked against the state database."""
    m = re.search(r"media: (\d+) new media references", log.read_text())
    if not m:
        sys.exit(f"check: no 'N new media references' line in {log}: did `media` run?")
    reported = int(m.group(1))
    if not state.is_file():
        sys.exit(f"check: no state database at {state}: is the tree in the layout of src/sink/layout.rs?")
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        in_state = db.execute("SELECT count(*) FROM media_ref").fetchone()[0]
    check_equal("media", f"references in {state}", in_state, reported)
    return reported


def check_tree(out: Path) -> list[Path]:
    """Every file of the two table roots is a Parquet file of the table (or hidden from readers),
    and records the schema version; returns the Parquet files."""
    files = []
    for table, depth in (("messages", 2), ("media_files", 1), ("findings", 2)):
        root = out / table
        if not root.is_dir():
            fail("tree", f"{root} is missing")
            continue
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root)
            if any(part.startswith((".", "_")) for part in rel.parts) or p.is_dir():
                continue
            keys = [part.split("=")[0] for part in rel.parts[:-1]]
            want = ["corp_id", "date"][:depth]
            if keys != want or p.suffix != ".parquet":
                fail("tree", f"{table}/{rel} is not a {'/'.join(k + '=…' for k in want)}/….parquet file")
                continue
            meta = pq.read_metadata(p).metadata or {}
            if SCHEMA_VERSION_KEY not in meta:
                fail("pyarrow", f"{table}/{rel} has no {SCHEMA_VERSION_KEY.decode()} in its key-value metadata")
            files.append(p)
    return files


def check_timezone_rule(out: Path, tz: str) -> None:
    """date= is the local day of msgtime (UTC) in the configured time zone."""
    import polars as pl

    bad = (
        pl.scan_parquet(out / "messages", hive_partitioning=True)
        .filter(pl.col("msgtime").dt.convert_time_zone(tz).dt.date() != pl.col("date"))
        .select(pl.len())
        .collect()
        .item()
    )
    check_equal("polars", f"rows whose date= is not the {tz} day of msgtime", bad, 0)


def hive_files(root: Path) -> list[tuple[str, Path]]:
    """(corp_id, file) of every visible Parquet file under a corp_id=…/date=… table root, the corp
    read from the folder name: no reader's partition discovery involved."""
    files = []
    for p in sorted(root.glob("corp_id=*/date=*/*.parquet")):
        if not p.name.startswith((".", "_")):
            files.append((p.parent.parent.name.split("=", 1)[1], p))
    return files


def check_findings_files(out: Path, rules_toml: Path) -> dict:
    """The findings as the files hold them, read one by one with pyarrow, against the rules that
    produced them: every rule_id is a rule of the file with its severity, every msgtype passes the
    rule's `msgtypes` filter, and the messages of `scope = "external"` findings have an external
    contact (from or tolist starting wo/wm; "internal": none has). Returns the reference the
    readers must agree with: findings_rows, findings_by_rule, and top_conversations (the top 5
    (conversation_id, chat_type, findings) of the join to the messages on (corp_id, seq), ordered
    by findings desc, conversation_id asc, as the README's DuckDB snippet orders them)."""
    rules = {r["id"]: r for r in tomllib.loads(rules_toml.read_text())["rule"]}
    messages = {}
    for corp, p in hive_files(out / "messages"):
        cols = pq.ParquetFile(p).read(columns=["seq", "from", "tolist", "conversation_id", "chat_type"]).to_pylist()
        for r in cols:
            messages[(corp, r["seq"])] = r
    by_rule: Counter = Counter()
    by_conversation: Counter = Counter()
    bad: Counter = Counter()  # (rule, what) -> findings
    rows = 0
    for corp, p in hive_files(out / "findings"):
        for f in pq.ParquetFile(p).read(columns=["seq", "msgtype", "rule_id", "severity"]).to_pylist():
            rows += 1
            by_rule[(f["rule_id"], f["severity"])] += 1
            rule = rules.get(f["rule_id"])
            if rule is None:
                bad[(f["rule_id"], f"is not a rule of {rules_toml.name}")] += 1
                continue
            if f["severity"] != rule["severity"]:
                bad[(f["rule_id"], f"severity {f['severity']!r}, the rule says {rule['severity']!r}")] += 1
            if "msgtypes" in rule and f["msgtype"] not in rule["msgtypes"]:
                bad[(f["rule_id"], f"msgtype {f['msgtype']!r} is not in its msgtypes {rule['msgtypes']}")] += 1
            m = messages.get((corp, f["seq"]))
            if m is None:
                bad[(f["rule_id"], f"no message with its (corp_id, seq) in {corp}")] += 1
                continue
            by_conversation[(m["conversation_id"], m["chat_type"])] += 1
            external = any(i.startswith(EXTERNAL_PREFIXES) for i in [m["from"] or "", *m["tolist"]])
            scope = rule.get("scope", "any")
            if scope == "external" and not external:
                bad[(f["rule_id"], "scope external, but no wo…/wm… id in the message's from/tolist")] += 1
            if scope == "internal" and external:
                bad[(f["rule_id"], "scope internal, but a wo…/wm… id in the message's from/tolist")] += 1
    for (rule, what), n in sorted(bad.items()):
        fail("findings files", f"{n} finding(s) of rule {rule!r}: {what}")
    missing = sorted(set(rules) - {r for r, _ in by_rule})
    if missing:
        # examples/rules.toml is written so that each rule fires on the simulator's texts: one that
        # fires on none means the matching or the simulator changed, and the check proves less.
        fail("findings files", f"rules of {rules_toml.name} that fired on no message: {missing}")
    # Nulls last, as DuckDB orders them by default.
    ordered = sorted(by_conversation.items(), key=lambda kv: (-kv[1], kv[0][0] is None, kv[0][0] or ""))
    return {
        "findings_rows": rows,
        "findings_by_rule": dict(by_rule),
        "top_conversations": [(c, t, n) for (c, t), n in ordered[:5]],
        "rules": len(rules),
    }


# ---------------------------------------------------------------- the README's snippets

SNIPPET_MARK = re.compile(r"<!--\s*readers\.sh:\s*(\w+)\s*-->")


def readme_snippets(readme: Path) -> list[tuple[str, str, str]]:
    """(expectation, language, code) of every code block right after a `readers.sh` mark."""
    lines = readme.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = SNIPPET_MARK.search(line)
        if not m:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j >= len(lines) or not lines[j].startswith("```"):
            fail("README", f"line {i + 1}: the mark {m.group(0)} is not followed by a code block")
            continue
        lang = lines[j][3:].strip()
        k = j + 1
        while k < len(lines) and not lines[k].startswith("```"):
            k += 1
        out.append((m.group(1), lang, "\n".join(lines[j + 1 : k])))
    return out


def run_python(code: str):
    """Runs a snippet as a notebook cell would: the value of its last expression or assignment."""
    tree = ast.parse(code)
    last = tree.body[-1]
    ns: dict = {}
    exec(compile(ast.Module(tree.body[:-1], []), "<README>", "exec"), ns)
    if isinstance(last, ast.Expr):
        return eval(compile(ast.Expression(last.value), "<README>", "eval"), ns)
    exec(compile(ast.Module([last], []), "<README>", "exec"), ns)
    target = last.targets[0] if isinstance(last, ast.Assign) else None
    if not isinstance(target, ast.Name):
        raise ValueError("the snippet must end with an expression or `name = …`")
    return ns[target.id]


def as_rows(result) -> tuple[list[str], list[tuple]]:
    """Columns and rows of whatever a reader returned."""
    mod = type(result).__module__
    if mod.startswith("duckdb"):
        return list(result.columns), result.fetchall()
    if mod.startswith("polars"):
        if hasattr(result, "collect"):
            result = result.collect()
        return result.columns, result.rows()
    if mod.startswith("pandas"):
        return [str(c) for c in result.columns], list(result.itertuples(index=False, name=None))
    if mod.startswith("pyspark"):
        return result.columns, [tuple(r) for r in result.collect()]
    if isinstance(result, pa.Table):
        return result.column_names, list(zip(*(c.to_pylist() for c in result.columns)))
    raise TypeError(f"cannot read a {type(result)}")


def snippet_reader(lang: str, code: str) -> str:
    for name, needle in (("spark", "pyspark"), ("polars", "polars"), ("pandas", "pandas"), ("duckdb", "duckdb"),
                         ("pyarrow", "pyarrow")):
        if needle in code:
            return name
    return lang


def check_snippets(readme: Path, want: dict) -> list[tuple[str, str, str]]:
    """Runs every marked snippet; returns (reader, expectation, what it returned)."""
    import duckdb

    seen = []
    for expect, lang, code in readme_snippets(readme):
        reader = "README " + snippet_reader(lang, code)
        try:
            if reader == "README spark":
                spark_session()  # the snippet's getOrCreate() gets this small local session
            if lang in ("sh", "shell", "bash", "console"):
                # The CLI's SQL, run by the same engine through its Python API (pip's duckdb has
                # no CLI): the text between `duckdb -c "` and the closing quote, verbatim.
                m = re.fullmatch(r'\s*duckdb\s+-c\s+"(.*)"\s*', code, re.S)
                if not m:
                    fail(reader, f"a marked {lang} block must be one `duckdb -c \"SQL\"` line: {code!r}")
                    continue
                result = duckdb.connect().sql(m.group(1))
            else:
                result = run_python(code)
            cols, rows = as_rows(result)
        except Exception as e:  # noqa: BLE001 - the README's snippet is what failed
            fail(reader, f"snippet failed: {type(e).__name__}: {e}\n{code}")
            continue
        if expect == "messages":
            check_equal(reader, "rows", len(rows), want["rows"])
            for c in ("corp_id", "date"):
                if c not in cols:
                    fail(reader, f"no partition column {c!r} in {cols}")
            got = f"{len(rows)} rows"
        elif expect == "media_files":
            check_equal(reader, "media_files rows", len(rows), want["media_rows"])
            got = f"{len(rows)} rows"
        elif expect == "by_msgtype":
            check_equal(reader, "counts by msgtype", {r[0]: r[1] for r in rows}, want["by_msgtype"])
            got = f"{len(rows)} msgtypes, {sum(r[1] for r in rows)} rows"
        elif expect == "join":
            # Grouped or not, the counts add up to one row per media reference.
            total = sum(r[-1] for r in rows) if cols[-1].startswith(("n", "count")) else len(rows)
            check_equal(reader, "messages ⋈ media_files rows", total, want["media_rows"])
            got = f"{total} joined rows"
        elif expect == "findings":
            if cols[:2] != ["rule_id", "severity"]:
                fail(reader, f"findings: the columns must start rule_id, severity (then the count), not {cols}")
                continue
            check_equal(reader, "findings by (rule_id, severity)", {(r[0], r[1]): r[-1] for r in rows},
                        want["findings_by_rule"])
            got = f"{len(rows)} (rule, severity) groups, {sum(r[-1] for r in rows)} findings"
        elif expect == "findings_by_conversation":
            check_equal(reader, "top 5 (conversation_id, chat_type, findings), pyarrow on the files",
                        [tuple(r) for r in rows], want["top_conversations"])
            got = f"{len(rows)} conversations, top {rows[0][2] if rows else 0} findings"
        else:
            fail(reader, f"unknown expectation {expect!r} (messages, media_files, by_msgtype, join, findings, "
                         "findings_by_conversation)")
            continue
        seen.append((reader, expect, got))
    needed = {("README duckdb", "by_msgtype"), ("README polars", "messages"), ("README pandas", "messages"),
              ("README spark", "messages"), ("README duckdb", "join"), ("README duckdb", "findings"),
              ("README duckdb", "findings_by_conversation")}
    for reader, expect in sorted(needed - {(r, e) for r, e, _ in seen}):
        fail(reader, f"README has no working `<!-- readers.sh: {expect} -->` snippet")
    return seen


# ---------------------------------------------------------------- main


def report_failures() -> int:
    print(f"\nreaders: {len(failures)} mismatch(es):", file=sys.stderr)
    for f in failures:
        print(f"  {f}", file=sys.stderr)
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help=f"the output root, named {README_OUT}")
    ap.add_argument("--demo-json", type=Path, required=True, help="what `demo --json` printed")
    ap.add_argument("--media-log", type=Path, required=True, help="what `media` printed")
    ap.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[2] / "README.md")
    ap.add_argument("--rules", type=Path, default=Path(__file__).resolve().parents[2] / "examples" / "rules.toml",
                    help="the rules.toml the demo screened with (--rules)")
    ap.add_argument("--timezone", default="Asia/Shanghai", help="the demo's time zone of date=")
    ap.add_argument("--readers", default=",".join(READERS), help="comma-separated subset")
    args = ap.parse_args()
    out, readme = args.out.resolve(), args.readme.resolve()
    demo_json, media_log, rules_toml = args.demo_json.resolve(), args.media_log.resolve(), args.rules.resolve()
    if out.name != README_OUT:
        sys.exit(f"check: the output root must be named {README_OUT} (the README's path), not {out.name}")
    # The README's snippets use the relative path wecom-archive-demo/…: run them from its parent.
    os.chdir(out.parent)

    rows, per_date, findings = written_by_demo(demo_json)
    media_rows = media_references(media_log, out / "_wecom_archive" / "state.sqlite")
    files = check_tree(out)
    dates = sorted({p.parent.name.split("=", 1)[1] for p in files if p.parent.name.startswith("date=")} - {"__HIVE_DEFAULT_PARTITION__"})
    if not dates:
        fail("tree", f"no date= partition under {out / 'messages'}")
        return report_failures()
    day = dt.date.fromisoformat(dates[len(dates) // 2])
    by_files = check_findings_files(out, rules_toml)
    check_equal("findings files", "rows", by_files["findings_rows"], findings)
    want = {"rows": rows, "media_rows": media_rows, "join_rows": media_rows, "findings_rows": findings,
            "findings_by_rule": by_files["findings_by_rule"], "findings_join": findings, "findings_unjoined": 0,
            "findings_msgid_differs": 0}
    if per_date:
        want["on_day"] = per_date.get(day.isoformat(), 0)
        want["from_day"] = sum(n for d, n in per_date.items() if d >= day.isoformat())
    check_timezone_rule(out, args.timezone)

    results = {}
    for name in args.readers.split(","):
        started = time.monotonic()
        try:
            r = READERS[name](out, day)
        except Exception as e:  # noqa: BLE001 - a reader that cannot open the tree is the finding
            fail(name, f"could not read the tables: {type(e).__name__}: {e}")
            continue
        r["secs"] = time.monotonic() - started
        results[name] = r
        for key, value in want.items():
            check_equal(name, key, r[key], value)
        for col, kind in MESSAGE_TYPES.items():
            if col == "date" and name in DATE_AS_STRING:
                kind = "string"
            check_equal(name, f"messages.{col} type", r["types"].get(col), kind)
        for col, kind in MEDIA_TYPES.items():
            check_equal(name, f"media_files.{col} type", r["media_types"].get(col), kind)
        for col, kind in FINDINGS_TYPES.items():
            if col == "date" and name in DATE_AS_STRING:
                kind = "string"
            check_equal(name, f"findings.{col} type", r["findings_types"].get(col), kind)
        extra = sorted(set(r["findings_types"]) - set(FINDINGS_TYPES))
        if extra:
            fail(name, f"findings columns not in COLUMNS_DOC: {extra}")
        versions = r["rule_set_versions"]
        if len(versions) != 1 or not re.fullmatch(r"[0-9a-f]{64}", versions[0]):
            fail(name, f"rule_set_version: got {versions!r}, expected one SHA-256 (64 hex digits)")
        if "date" in r["media_types"]:
            fail(name, "media_files has a date column: it is partitioned by corp_id only")
        unsigned = sorted(c for c, k in {**r["types"], **r["media_types"], **r["findings_types"]}.items()
                          if str(k).startswith("uint"))
        if unsigned:
            fail(name, f"unsigned columns (no lake type for them): {unsigned}")

    # Everything a reader computed must agree with the first reader that read the tables.
    if results:
        first, ref = next(iter(results.items()))
        for name, r in results.items():
            for key in ("by_msgtype", "min_ms", "max_ms", "on_day", "from_day", "media_by_status", "by_chat_type",
                        "external_senders", "rule_set_versions"):
                if r[key] != ref[key]:
                    fail(name, f"{key}: got {r[key]!r}, {first} got {ref[key]!r}")
        want["by_msgtype"] = ref["by_msgtype"]
    want.setdefault("by_msgtype", {})
    want["top_conversations"] = by_files["top_conversations"]
    snippets = check_snippets(readme, want)

    print(f"\nwritten by demo: {rows} rows; media references: {media_rows}; date filter day: {day}")
    head = f"{'reader':<8} {'rows':>6} {'corp_id':<7} {'date':<7} {'types':<5} {'msgtypes':>8} " \
           f"{'min msgtime (UTC)':<20} {'max msgtime (UTC)':<20} {'=day':>5} {'>=day':>6} {'media':>6} {'join':>6} {'secs':>5}"
    print(head)
    utc = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    for name, r in results.items():
        types_ok = all(r["types"].get(c) == k for c, k in MESSAGE_TYPES.items() if c != "date")
        print(f"{name:<8} {r['rows']:>6} {r['types'].get('corp_id', '-'):<7} {r['types'].get('date', '-'):<7} "
              f"{'ok' if types_ok else 'BAD':<5} {len(r['by_msgtype']):>8} {utc(r['min_ms']):<20} {utc(r['max_ms']):<20} "
              f"{r['on_day']:>5} {r['from_day']:>6} {r['media_rows']:>6} {r['join_rows']:>6} {r['secs']:>5.1f}")
    print(f"\nfindings (demo --rules {rules_toml.name}, {by_files['rules']} rules): {findings} rows; "
          f"conversation columns of the messages (chat_type counts, is_external_sender)")
    print(f"{'reader':<8} {'findings':>8} {'rule×sev':>8} {'version':<12} {'terms':<12} {'ftypes':<6} {'f⋈m':>6} "
          f"{'no msg':>6} {'msgid≠':>6} {'group':>6} {'single':>6} {'s_ext':>6} {'null':>5} {'ext.snd':>7}")
    for name, r in results.items():
        ftypes_ok = all(r["findings_types"].get(c) == k for c, k in FINDINGS_TYPES.items() if c != "date")
        chat = r["by_chat_type"]
        print(f"{name:<8} {r['findings_rows']:>8} {len(r['findings_by_rule']):>8} "
              f"{(r['rule_set_versions'] or ['-'])[0][:12]:<12} {r['findings_types'].get('terms', '-'):<12} "
              f"{'ok' if ftypes_ok else 'BAD':<6} {r['findings_join']:>6} {r['findings_unjoined']:>6} "
              f"{r['findings_msgid_differs']:>6} {chat.get('group', 0):>6} {chat.get('single', 0):>6} "
              f"{chat.get('single_external', 0):>6} {chat.get(None, 0):>5} {r['external_senders']:>7}")
    per_rule = ", ".join(f"{r}/{sev} {n}" for (r, sev), n in sorted(by_files["findings_by_rule"].items()))
    print(f"findings files (pyarrow, file by file, against {rules_toml.name}): {by_files['findings_rows']} rows "
          f"({per_rule}); rule severities, msgtypes filters and scopes checked")
    for reader, expect, got in snippets:
        print(f"{reader} ({expect}): {got}")
    if failures:
        return report_failures()
    print(f"\nreaders: {len(results)} readers and {len(snippets)} README snippets agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
