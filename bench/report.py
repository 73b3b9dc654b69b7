#!/usr/bin/env python3
"""Assembles bench/out/results.json from the pieces compare.sh wrote and
prints the comparison table (standard library only)."""

import argparse
import json
import os


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def fmt(value, digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="bench/out directory")
    args = parser.parse_args()
    out = args.out

    run = load(os.path.join(out, "run.json"))
    duck = load(os.path.join(out, "duckdb.json")) or {}
    ingest = load(os.path.join(out, "proviso-ingest.json")) or {}
    queries = load(os.path.join(out, "proviso-queries.json")) or {}
    http = load(os.path.join(out, "http-load.json")) or {}
    cores = run["nproc"]

    proviso_ingest_s = ingest.get("seconds")
    proviso_wall_s = run.get("proviso_ingest_wall_s")
    eps = ingest.get("events_per_second")
    lines = run["lines"]
    accepted = ingest.get("accepted")
    rejected = ingest.get("rejected")

    dau_duck = [p["active"] for p in duck.get("dau_series", [])]
    dau_prov = [p["active"] for p in queries.get("dau_series", [])]
    mau_duck = [p["active"] for p in duck.get("mau_series", [])]
    mau_prov = [p["active"] for p in queries.get("mau_series", [])]

    def max_rel_diff(a, b):
        if not a or len(a) != len(b):
            return None
        return round(max(abs(x - y) / max(x, 1) for x, y in zip(a, b)), 4)

    results = {
        "events": run["events"],
        "subjects": run["subjects"],
        "days": run["days"],
        "seed": run["seed"],
        "nproc": cores,
        "file": run["file"],
        "file_bytes": run["file_bytes"],
        "file_lines": lines,
        "duckdb_version": duck.get("duckdb_version"),
        "duckdb_threads": duck.get("threads"),
        "duckdb_load_s": duck.get("load_s"),
        "duckdb_checkpoint_s": duck.get("checkpoint_s"),
        "duckdb_load_fast_s": duck.get("load_fast_s"),
        "duckdb_load_fast_rows": duck.get("load_fast_rows"),
        "duckdb_load_fast_rows_with_unparsed_ts": duck.get("load_fast_rows_with_unparsed_ts"),
        "duckdb_load_peak_rss_bytes": run.get("duckdb_peak_rss_bytes"),
        "duckdb_db_bytes": duck.get("db_bytes"),
        "duckdb_rows": duck.get("rows"),
        "duckdb_rows_with_unparsed_ts": duck.get("rows_with_unparsed_ts"),
        "duckdb_distinct_phone_strings": duck.get("distinct_phone_strings"),
        "proviso_ingest_s": proviso_ingest_s,
        "proviso_ingest_wall_s": proviso_wall_s,
        "proviso_ingest_peak_rss_bytes": run.get("proviso_peak_rss_bytes"),
        "proviso_accepted": accepted,
        "proviso_rejected": rejected,
        "proviso_rejected_by_reason": ingest.get("rejected_by_reason"),
        "proviso_first_errors": ingest.get("first_errors"),
        "proviso_accepted_plus_rejected_equals_lines": (
            None if accepted is None else accepted + rejected == lines
        ),
        "proviso_data_bytes": run.get("proviso_data_bytes"),
        "ingest_ratio": ratio(duck.get("load_s"), proviso_ingest_s),
        "ingest_ratio_wall": ratio(duck.get("load_s"), proviso_wall_s),
        "ingest_ratio_fast": ratio(duck.get("load_fast_s"), proviso_ingest_s),
        "proviso_events_per_second": eps,
        "proviso_events_per_second_per_core": round(eps / cores, 1) if eps else None,
        "proviso_serve_startup_s": run.get("proviso_serve_startup_s"),
        "duckdb_dau_s": duck.get("dau_s"),
        "proviso_dau_s": queries.get("dau_s"),
        "dau_ratio": ratio(duck.get("dau_s"), queries.get("dau_s")),
        "duckdb_mau_s": duck.get("mau_s"),
        "proviso_mau_s": queries.get("mau_s"),
        "mau_ratio": ratio(duck.get("mau_s"), queries.get("mau_s")),
        "duckdb_dau_sample": duck.get("dau_sample"),
        "proviso_dau_sample": queries.get("dau_sample"),
        "duckdb_mau_sample": duck.get("mau_sample"),
        "proviso_mau_sample": queries.get("mau_sample"),
        "dau_max_relative_difference": max_rel_diff(dau_duck, dau_prov),
        "mau_max_relative_difference": max_rel_diff(mau_duck, mau_prov),
        "proviso_healthz": queries.get("healthz"),
        "proviso_one_day_dau_latency": queries.get("one_day_dau_latency"),
        "proviso_one_day_mau_latency": queries.get("one_day_mau_latency"),
        "proviso_rss_bytes": queries.get("rss_bytes"),
        "proviso_rss_bytes_per_subject": queries.get("rss_bytes_per_subject"),
        "http_lines": http.get("lines"),
        "http_batch_lines": http.get("batch_lines"),
        "http_connections": http.get("connections"),
        "http_accepted": http.get("accepted"),
        "http_rejected": http.get("rejected"),
        "http_errors": http.get("error_count"),
        "http_wall_s": http.get("wall_s"),
        "http_events_per_second": http.get("events_per_second"),
        "http_events_per_second_per_core": (
            round(http["events_per_second"] / cores, 1) if http.get("events_per_second") else None
        ),
        "http_request_p50_s": http.get("request_p50_s"),
        "http_request_p99_s": http.get("request_p99_s"),
        "http_healthz_after": run.get("http_healthz"),
        "other_cpu_s_during_duckdb": run.get("other_cpu_s_during_duckdb"),
        "other_cpu_s_during_ingest": run.get("other_cpu_s_during_ingest"),
        "commands": run.get("commands"),
        "duckdb_load_sql": duck.get("load_sql"),
        "duckdb_dau_sql": duck.get("dau_sql"),
        "duckdb_mau_sql": duck.get("mau_sql"),
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    r = results
    mb = r["file_bytes"] / 1e6
    rows = [
        ("", f"DuckDB {r['duckdb_version']}", "proviso", "DuckDB/proviso"),
        ("load / ingest, s", fmt(r["duckdb_load_s"]), fmt(r["proviso_ingest_s"]), fmt(r["ingest_ratio"], 2)),
        ("  (proviso process wall, s)", "", fmt(r["proviso_ingest_wall_s"]), fmt(r["ingest_ratio_wall"], 2)),
        ("  (DuckDB, columns spelled out, s)", fmt(r["duckdb_load_fast_s"]), fmt(r["proviso_ingest_s"]), fmt(r["ingest_ratio_fast"], 2)),
        ("  (DuckDB CHECKPOINT+close, s)", fmt(r["duckdb_checkpoint_s"]), "", ""),
        ("lines loaded", fmt(r["duckdb_rows"]), f"{fmt(accepted)} + {fmt(rejected)} rej", ""),
        ("load peak RSS, MB",
         fmt(r["duckdb_load_peak_rss_bytes"] / 1e6, 0) if r["duckdb_load_peak_rss_bytes"] else "n/a",
         fmt(r["proviso_ingest_peak_rss_bytes"] / 1e6, 0) if r["proviso_ingest_peak_rss_bytes"] else "n/a", ""),
        ("on disk, MB",
         fmt(r["duckdb_db_bytes"] / 1e6, 0) if r["duckdb_db_bytes"] else "n/a",
         fmt(r["proviso_data_bytes"] / 1e6, 0) if r["proviso_data_bytes"] else "n/a", ""),
        ("DAU x30 days, s (best)", fmt(r["duckdb_dau_s"], 4), fmt(r["proviso_dau_s"], 4), fmt(r["dau_ratio"], 1)),
        ("MAU x30 days, s (best)", fmt(r["duckdb_mau_s"], 4), fmt(r["proviso_mau_s"], 4), fmt(r["mau_ratio"], 1)),
        ("DAU first 3 days", fmt(r["duckdb_dau_sample"]), fmt(r["proviso_dau_sample"]), ""),
        ("MAU first 3 days", fmt(r["duckdb_mau_sample"]), fmt(r["proviso_mau_sample"]), ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print()
    print(
        f"proviso vs DuckDB: {r['events']:,} events requested ({lines:,} lines, {mb:,.1f} MB), "
        f"{r['subjects']:,} subjects, {r['days']} days, seed {r['seed']}, {cores} cores"
    )
    for row in rows:
        print("  " + "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
    print()
    for name, key in (("DAU", "proviso_one_day_dau_latency"), ("30-day active", "proviso_one_day_mau_latency")):
        lat = r.get(key) or {}
        if lat:
            print(f"  one day's {name} over HTTP, {lat['runs']} random days: p50 {lat['p50_s'] * 1e3:.3f} ms, "
                  f"p99 {lat['p99_s'] * 1e3:.3f} ms, max {lat['max_s'] * 1e3:.3f} ms")
    print(f"  proviso ingest: {fmt(eps, 0)} events/s, {fmt(r['proviso_events_per_second_per_core'], 0)} events/s/core"
          f"  (accepted+rejected == lines: {r['proviso_accepted_plus_rejected_equals_lines']})")
    if r["proviso_rejected"]:
        print(f"  proviso rejected by reason: {r['proviso_rejected_by_reason']}")
        for error in (r["proviso_first_errors"] or [])[:5]:
            print(f"    {error}")
    print(f"  HTTP ingest: {fmt(r['http_events_per_second'], 0)} events/s"
          f" ({fmt(r['http_events_per_second_per_core'], 0)}/core; {fmt(r['http_lines'])} lines,"
          f" {r['http_batch_lines']} lines/batch, {r['http_connections']} connections,"
          f" p50 {fmt(r['http_request_p50_s'])}s p99 {fmt(r['http_request_p99_s'])}s per batch,"
          f" {r['http_rejected']} rejected, {r['http_errors']} errors)")
    print(f"  proviso server: RSS {fmt(r['proviso_rss_bytes'])} bytes after queries, "
          f"{fmt(r['proviso_rss_bytes_per_subject'], 0)} bytes/subject; healthz {r['proviso_healthz']};"
          f" start-up {fmt(r['proviso_serve_startup_s'], 2)}s")
    print(f"  distinct subjects: DuckDB {fmt(r['duckdb_distinct_phone_strings'])} written phone strings (any event type),"
          f" proviso {fmt((r['proviso_healthz'] or {}).get('subjects'))} E.164 subjects")
    print(f"  max relative difference per day: DAU {r['dau_max_relative_difference']},"
          f" MAU {r['mau_max_relative_difference']}  (DuckDB counts written strings, proviso normalised numbers)")
    print(f"  CPU-s used by other processes during the DuckDB step: {r['other_cpu_s_during_duckdb']},"
          f" during proviso ingest: {r['other_cpu_s_during_ingest']}  (well above 0 = the cores were shared;"
          f" rerun on a quiet machine)")
    print(f"  results: {os.path.join(out, 'results.json')}")


if __name__ == "__main__":
    main()
