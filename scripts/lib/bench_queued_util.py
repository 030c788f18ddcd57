#!/usr/bin/env python3
"""Helpers for scripts/bench-queued (a restart on a full spool).

  bench_queued_util.py memory PID
      Print "<VmRSS kB> <VmHWM kB>" of PID.

  bench_queued_util.py restart HERALD_BIN CONFIG PORT DELIVERY_LOG SINK_DIR TIMEOUT OUT
      Start `HERALD_BIN serve --config CONFIG` (its output to OUT.herald-out, its pid to
      OUT.pid) and watch it every 10 ms from the moment it was started:
        listening     127.0.0.1:PORT accepts a TCP connection;
        first_log     DELIVERY_LOG has its first complete line (the outcome of the first
                      delivery attempt);
        first_sink    the first message arrived at the next hop (SINK_DIR/first, written
                      by bench_relay_util.py sink when smtp-sink counted it).
      Writes OUT (KEY=VALUE lines): seconds from start to each event, VmRSS (kB) when
      listening and at the first delivery, the first log line, the count at the sink
      when it stops. Stops when all three happened, or after TIMEOUT seconds, or when
      herald exits; then stops herald (SIGTERM, SIGKILL after 60 s). Exit 0 when all
      three events happened, 1 otherwise.
"""

import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_util import stop_process  # noqa: E402


def memory(pid):
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def accepting(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def first_line(path):
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError:
        return None
    if b"\n" not in data:
        return None
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def sink_first(sink_dir):
    try:
        with open(os.path.join(sink_dir, "first")) as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sink_count(sink_dir):
    try:
        with open(os.path.join(sink_dir, "status")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def restart(herald_bin, config, port, delivery_log, sink_dir, timeout, out):
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    herald_out = open(out + ".herald-out", "wb")
    t0, wall0 = time.monotonic(), time.time()
    proc = subprocess.Popen([herald_bin, "serve", "--config", config],
                            stdout=herald_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with open(out + ".pid", "w") as f:
        f.write(f"{proc.pid}\n")
    got = {}
    rss_listen = rss_first = None
    line = None
    status = "ok"
    while True:
        now = time.monotonic() - t0
        if proc.poll() is not None:
            status = f"herald exited with status {proc.returncode}"
            break
        if stop["flag"]:
            status = "interrupted"
            break
        if "listening" not in got and accepting(port):
            got["listening"] = time.monotonic() - t0
            rss_listen = memory(proc.pid)[0]
        if "first_log" not in got:
            line = first_line(delivery_log)
            if line is not None:
                got["first_log"] = time.monotonic() - t0
                rss_first = memory(proc.pid)[0]
        if "first_sink" not in got:
            first = sink_first(sink_dir)
            if first is not None:
                got["first_sink"] = first - wall0
        if len(got) == 3:
            break
        if now > timeout:
            status = f"timed out after {timeout:.0f} s"
            break
        time.sleep(0.01)
    rss_end, hwm_end = memory(proc.pid)
    stop_process(proc, 60)
    herald_out.close()
    with open(out, "w") as f:
        for k in ("listening", "first_log", "first_sink"):
            f.write(f"{k}={got[k]:.3f}\n" if k in got else f"{k}=-\n")
        f.write(f"rss_listen_kib={rss_listen if rss_listen is not None else '-'}\n")
        f.write(f"rss_first_kib={rss_first if rss_first is not None else '-'}\n")
        f.write(f"rss_end_kib={rss_end if rss_end is not None else '-'}\n")
        f.write(f"hwm_end_kib={hwm_end if hwm_end is not None else '-'}\n")
        f.write(f"first_line={line or '-'}\n")
        f.write(f"sink_count={sink_count(sink_dir)}\n")
        f.write(f"herald_exit={proc.returncode}\n")
        f.write(f"status={status}\n")
    return 0 if len(got) == 3 else 1


def main(argv):
    if len(argv) == 3 and argv[1] == "memory":
        rss, hwm = memory(int(argv[2]))
        if rss is None:
            return 1
        print(rss, hwm)
        return 0
    if len(argv) == 9 and argv[1] == "restart":
        return restart(argv[2], argv[3], int(argv[4]), argv[5], argv[6], float(argv[7]), argv[8])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
