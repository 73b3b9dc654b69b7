#!/usr/bin/env python3
"""DuckDB reference for bench/compare.sh: load the same NDJSON file into a
persistent DuckDB database and time the same two usage queries proviso
answers (DAU per day, trailing-30-day active subjects per day).

Prints one JSON object on stdout; progress goes to stderr.

Load: `CREATE TABLE events AS SELECT * REPLACE (to_json(ts)->>'$' AS ts)
FROM read_json(FILE, format='newline_delimited', union_by_name=true,
sample_size=-1)`.

- sample_size=-1 makes type detection read the whole file, so a field that is
  a string on most lines and a number on some (or a field that appears only on
  some event types, like `contacts`) is typed so that every line loads.
- `ts` is an RFC 3339 string on most lines and an integer epoch-ms on ~10%:
  detection types it JSON. `to_json(ts)->>'$'` turns every value into its
  plain text ('2026-01-03T10:00:00+05:30' or '1767434400000'), so the table
  stores ts as VARCHAR whatever type detection chose, and the queries convert
  it to a UTC day: all digits -> epoch_ms(...), else CAST(... AS TIMESTAMPTZ)
  with TimeZone=UTC.
- Every other column is loaded as detected (all fields of every line are kept,
  like proviso, which parses and validates every field).

load_s is the CREATE TABLE statement, auto-committed (DuckDB's commit is
durable: data written to the database file / WAL and fsync'd).
checkpoint_s is an extra explicit CHECKPOINT + close after it, reported
separately and not counted in load_s.

load_fast_s is DuckDB at its best (see ../shared/MEASURED.md): the same file
loaded again into a fresh database with every column spelled out
(`read_json(..., columns = {...})` with the types the first load detected,
ts as VARCHAR), so nothing is sampled or inferred. Its row count and
unparsed-ts count are reported so a faster load that lost data shows.

Queries run on a fresh connection to the persistent file (close + reopen after
the load), each run `--runs` times, best time kept.
"""

import argparse
import datetime as dt
import json
import os
import sys
import time

import duckdb


def log(msg):
    print(f"[duckdb] {msg}", file=sys.stderr, flush=True)


# UTC day of an event, from the VARCHAR ts column.
DAY_EXPR = """
CASE WHEN regexp_full_match(ts, '[0-9]+')
     THEN CAST(epoch_ms(CAST(ts AS BIGINT)) AS DATE)
     ELSE CAST(CAST(ts AS TIMESTAMPTZ) AS DATE)
END
""".strip()

ACTIVE_WHERE = """
("type" IN ('register', 'session', 'message')
 OR ("type" = 'business_message' AND direction = 'out'))
""".strip()


def dau_sql(first, last):
    return f"""
WITH active AS (
  SELECT phone, {DAY_EXPR} AS day
  FROM events
  WHERE {ACTIVE_WHERE}
)
SELECT day, count(DISTINCT phone) AS active
FROM active
WHERE day BETWEEN DATE '{first}' AND DATE '{last}'
GROUP BY day
ORDER BY day
"""


def mau_sql(first, last, window):
    # Distinct (phone, day) pairs in the span the windows cover, then a range
    # join against the calendar: for each day d, phones active in
    # [d - (window-1), d].
    return f"""
WITH pairs AS (
  SELECT DISTINCT phone, day FROM (
    SELECT phone, {DAY_EXPR} AS day
    FROM events
    WHERE {ACTIVE_WHERE}
  )
  WHERE day BETWEEN DATE '{first}' - INTERVAL {window - 1} DAY AND DATE '{last}'
),
days AS (
  SELECT CAST(range AS DATE) AS d
  FROM range(DATE '{first}', DATE '{last}' + INTERVAL 1 DAY, INTERVAL 1 DAY)
)
SELECT d AS day, count(DISTINCT phone) AS active
FROM days JOIN pairs ON pairs.day BETWEEN d - INTERVAL {window - 1} DAY AND d
GROUP BY d
ORDER BY d
"""


def connect(db):
    con = duckdb.connect(db)
    con.execute("SET TimeZone = 'UTC'")
    return con


def best_of(con, sql, runs):
    best = None
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        elapsed = time.perf_counter() - started
        if best is None or elapsed < best:
            best = elapsed
        result = rows
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="NDJSON events file")
    parser.add_argument("--db", required=True, help="database file (deleted first)")
    parser.add_argument("--from", dest="first", default="2026-01-01", help="first day (YYYY-MM-DD)")
    parser.add_argument("--days", type=int, default=30, help="number of days")
    parser.add_argument("--window", type=int, default=30, help="trailing window of the MAU query")
    parser.add_argument("--runs", type=int, default=3, help="runs per query, best kept")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads [default: DuckDB's]")
    args = parser.parse_args()

    first = dt.date.fromisoformat(args.first)
    last = first + dt.timedelta(days=args.days - 1)

    for path in (args.db, args.db + ".wal"):
        if os.path.exists(path):
            os.remove(path)

    con = connect(args.db)
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    path_sql = args.file.replace("'", "''")
    load_sql = (
        "CREATE TABLE events AS SELECT * REPLACE (to_json(ts)->>'$' AS ts) "
        f"FROM read_json('{path_sql}', format='newline_delimited', union_by_name=true, sample_size=-1)"
    )
    log(f"loading {args.file} into {args.db} ({threads} threads)")
    started = time.perf_counter()
    con.execute(load_sql)
    load_s = time.perf_counter() - started
    log(f"loaded in {load_s:.2f}s")
    schema = {name: typ for name, typ, *_ in con.execute("DESCRIBE events").fetchall()}
    started = time.perf_counter()
    con.execute("CHECKPOINT")
    con.close()
    checkpoint_s = time.perf_counter() - started
    db_bytes = os.path.getsize(args.db)

    # DuckDB at its best: the same file loaded again with every column
    # spelled out (the types the first load found, ts as VARCHAR), so
    # nothing is sampled or inferred. A fresh database, durable the same way.
    fast_db = args.db + ".fast"
    for path in (fast_db, fast_db + ".wal"):
        if os.path.exists(path):
            os.remove(path)
    columns = ", ".join(
        f"'{name}': '{'VARCHAR' if name == 'ts' else typ}'" for name, typ in schema.items()
    )
    fast_sql = (
        "CREATE TABLE events AS SELECT * "
        f"FROM read_json('{path_sql}', format='newline_delimited', columns = {{{columns}}})"
    )
    con = connect(fast_db)
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    log("loading again with the columns spelled out")
    started = time.perf_counter()
    con.execute(fast_sql)
    load_fast_s = time.perf_counter() - started
    fast_rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    fast_unparsed_ts = con.execute(
        f"SELECT count(*) FROM events WHERE ts IS NULL OR TRY_CAST(({DAY_EXPR.replace('CAST(', 'TRY_CAST(')}) AS DATE) IS NULL"
    ).fetchone()[0]
    con.close()
    log(f"loaded in {load_fast_s:.2f}s ({fast_rows} rows)")
    for path in (fast_db, fast_db + ".wal"):
        if os.path.exists(path):
            os.remove(path)

    con = connect(args.db)
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    unparsed_ts = con.execute(
        f"SELECT count(*) FROM events WHERE ts IS NULL OR TRY_CAST(({DAY_EXPR.replace('CAST(', 'TRY_CAST(')}) AS DATE) IS NULL"
    ).fetchone()[0]
    log(f"{rows} rows; timing queries, best of {args.runs}")
    dau_s, dau = best_of(con, dau_sql(first, last), args.runs)
    log(f"dau {dau_s:.3f}s")
    mau_s, mau = best_of(con, mau_sql(first, last, args.window), args.runs)
    log(f"mau {mau_s:.3f}s")
    distinct_phones = con.execute("SELECT count(DISTINCT phone) FROM events").fetchone()[0]
    con.close()

    out = {
        "duckdb_version": duckdb.__version__,
        "threads": int(threads),
        "load_sql": load_sql,
        "schema": schema,
        "load_s": round(load_s, 4),
        "load_fast_sql": fast_sql,
        "load_fast_s": round(load_fast_s, 4),
        "load_fast_rows": fast_rows,
        "load_fast_rows_with_unparsed_ts": fast_unparsed_ts,
        "checkpoint_s": round(checkpoint_s, 4),
        "db_bytes": db_bytes,
        "rows": rows,
        "rows_with_unparsed_ts": unparsed_ts,
        "distinct_phone_strings": distinct_phones,
        "dau_s": round(dau_s, 4),
        "mau_s": round(mau_s, 4),
        "mau_window": args.window,
        "runs": args.runs,
        "dau_sample": [count for _, count in dau[:3]],
        "mau_sample": [count for _, count in mau[:3]],
        "dau_series": [{"day": str(day), "active": count} for day, count in dau],
        "mau_series": [{"day": str(day), "active": count} for day, count in mau],
        "dau_sql": dau_sql(first, last).strip(),
        "mau_sql": mau_sql(first, last, args.window).strip(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
