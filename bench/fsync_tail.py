#!/usr/bin/env python3
"""bench/fsync_tail.py: how long a small fdatasync waits while a log flushes.

The question behind the log's SYNC_STEP_BYTES (src/log/mod.rs): a
disclosure makes three small appends durable (vault, audit log, feed) while
the writer flushes the event log to the same disk. How long do those small
syncs take, depending on how many bytes the log flushes at a time?

One thread plays the log: it appends 12 MiB groups, fdatasync after every
STEP KiB (STEP = 12288: one flush per group, as proviso did before), and
rests 20 ms between groups. The main thread appends 300 bytes to each of
three files and fdatasyncs them, one after another (serial, as proviso
does) or from three threads at once (parallel), 1,000 times with 2 ms
between, and prints the percentiles of that whole step in milliseconds.

Usage: bench/fsync_tail.py DIR serial|parallel STEP_KIB [BUSY]
DIR must be on the disk the data dir uses (it is emptied). BUSY (default 0)
starts that many busy-looping processes, to see what CPU contention adds.
Python's GIL is let go in every system call timed here.
"""
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def main():
    if len(sys.argv) < 4 or sys.argv[2] not in ("serial", "parallel"):
        sys.exit(__doc__)
    where, how, step_kib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    busy = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    os.makedirs(where, exist_ok=True)
    for name in os.listdir(where):
        os.unlink(os.path.join(where, name))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    stop = threading.Event()

    def log():
        fd = os.open(os.path.join(where, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        chunk = os.urandom(step_kib << 10)
        written = 0
        while not stop.is_set():
            for _ in range(max(1, (12 << 10) // step_kib)):
                os.write(fd, chunk)
                os.fdatasync(fd)
                written += len(chunk)
            time.sleep(0.02)
            if written > (2 << 30):
                os.ftruncate(fd, 0)
                written = 0
        os.close(fd)

    flusher = threading.Thread(target=log)
    flusher.start()
    time.sleep(1)
    fds = [os.open(os.path.join(where, f"small{i}"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600) for i in range(3)]
    pool = ThreadPoolExecutor(3)
    record = b"x" * 300
    took = []
    try:
        for _ in range(1000):
            started = time.perf_counter()
            if how == "serial":
                for fd in fds:
                    os.write(fd, record)
                    os.fdatasync(fd)
            else:
                for fd in fds:
                    os.write(fd, record)
                list(pool.map(os.fdatasync, fds))
            took.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)
    finally:
        stop.set()
        flusher.join()
        for spinner in spinners:
            spinner.kill()
    took.sort()
    at = lambda q: took[int(q * (len(took) - 1))]
    print(f"{how:8} log step {step_kib:5} KiB busy {busy}: p50 {at(.5):.2f} p90 {at(.9):.2f} "
          f"p99 {at(.99):.2f} max {took[-1]:.2f} ms")


if __name__ == "__main__":
    main()
