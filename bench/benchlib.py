"""Helpers shared by the bench clients and reports (standard library only).

Imported by bench/abuse_latency.py and bench/partner_load.py (run as
`python3 bench/x.py`, so bench/ is on sys.path), and by the result reports
of bench/abuse.sh and bench/partner.sh (which put bench/ on sys.path).
"""

import http.client
import json
import os
import platform
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# What a failed request, an unexpected answer or a malformed one can raise.
REQUEST_ERRORS = (RuntimeError, OSError, http.client.HTTPException, ValueError, KeyError)


# --- CPU and memory, from /proc -------------------------------------------


def busy_cpu_s():
    """CPU-seconds the whole machine spent busy (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    values = [int(v) for v in fields[1:]]
    return (values[0] + values[1] + values[2] + values[5] + values[6] + values[7]) / CLK_TCK


def process_cpu_s(pid):
    """utime + stime of one process, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Meter:
    """CPU of the server, this client and everything else over one phase."""

    def __init__(self, pid):
        self.pid = pid
        self.busy = busy_cpu_s()
        self.own = sum(os.times()[:2])
        self.server = process_cpu_s(pid) if pid else None
        self.started = time.perf_counter()

    def done(self):
        wall = time.perf_counter() - self.started
        busy = busy_cpu_s() - self.busy
        own = sum(os.times()[:2]) - self.own
        server_after = process_cpu_s(self.pid) if self.pid else None
        server = None if self.server is None or server_after is None else server_after - self.server
        return {
            "wall_s": round(wall, 3),
            "busy_cpu_s": round(busy, 2),
            "client_cpu_s": round(own, 2),
            "server_cpu_s": None if server is None else round(server, 2),
            "other_cpu_s": None if server is None else round(busy - own - server, 1),
            "server_rss_bytes": vm_rss_bytes(self.pid) if self.pid else None,
        }


# --- Latency figures --------------------------------------------------------


def pct(values, p):
    """Nearest-rank percentile of a sorted list (same as http_load.py)."""
    if not values:
        return None
    return round(values[min(len(values) - 1, int(p * len(values)))], 3)


def summary(values, percentiles=(50, 99), count=False):
    """{"n"?, "p50", ..., "max", "mean"} of the values (None figures when empty).
    `count` adds the number of values first, as "n"."""
    values = sorted(values)
    out = {"n": len(values)} if count else {}
    for p in percentiles:
        out[f"p{p}"] = pct(values, p / 100)
    out["max"] = round(values[-1], 3) if values else None
    out["mean"] = round(sum(values) / len(values), 3) if values else None
    return out


# --- HTTP -------------------------------------------------------------------


class Client:
    """One keep-alive connection; reconnects once on a dropped connection."""

    def __init__(self, url, token, timeout):
        self.host, self.port = url.hostname, url.port
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.reconnects = 0

    def request(self, method, path, body=None, content_type=None, idempotency_key=None):
        """(status, body bytes). A body is sent as `content_type`,
        application/json unless told. The request is sent again once after a
        dropped connection: give a POST of events an `idempotency_key` so
        that resend is never applied twice."""
        headers = dict(self.headers)
        if body is not None or content_type:
            headers["Content-Type"] = content_type or "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.reconnects += 1
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        self.conn.close()


def read_feed(client, feed_path, cursor):
    """One page (up to 1000 records) of a partner feed after `cursor`:
    (records, next cursor)."""
    path = feed_path + "?limit=1000" + ("" if cursor is None else f"&after={cursor}")
    status, payload = client.request("GET", path)
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status} {payload[:300]!r}")
    page = json.loads(payload)
    return page["records"], page["next"]


# --- Result reports (bench/abuse.sh, bench/partner.sh) ----------------------


def load_json(out, name, empty_is_missing=False):
    """The JSON file OUT/NAME, or None when it does not exist (or, with
    `empty_is_missing`, is empty)."""
    path = os.path.join(out, name)
    if not os.path.exists(path) or (empty_is_missing and os.path.getsize(path) == 0):
        return None
    with open(path) as f:
        return json.load(f)


def read_steps(path):
    """The step records (NDJSON from lib.sh's step_record), by step name."""
    steps = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                step = json.loads(line)
                steps[step["step"]] = step
    return steps


def read_commands(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def step_contention(steps):
    """Notes on the timed steps that ran on a busy machine."""
    noisy = []
    for name, step in steps.items():
        if step.get("other_cpu_s") is not None and step["other_cpu_s"] > 1.0:
            noisy.append(f"{name}: other processes used {step['other_cpu_s']} CPU-s")
        if step.get("compilers_at_start"):
            noisy.append(f"{name}: {step['compilers_at_start']} rustc/cargo process(es) running at its start")
    return noisy


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def mem_total_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def machine(env):
    return {
        "nproc": int(env["NPROC"]), "cpu_model": cpu_model(), "mem_total_bytes": mem_total_bytes(),
        "kernel": platform.release(),
    }


def binary(env):
    """What lib.sh's private_binary found out about the binary."""
    return {"git_head": env["GIT_HEAD"], "dirty_tracked_files": int(env["GIT_DIRTY_FILES"]), "built": env["BIN_MTIME"],
            "sha256_prefix": env["BIN_SHA256"]}


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(rows, noisy, effect):
    """The (name, value) rows, then the contention notes ("these figures
    may be EFFECT")."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}" if name else "")
    print()
    if noisy:
        print(f"CONTENTION: these figures may be {effect}; rerun on a quiet machine:")
        for note in noisy:
            print(f"  - {note}")
    else:
        print("no contention detected (other CPU <= 1 CPU-s in every timed step, no compiler running)")
