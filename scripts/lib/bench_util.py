#!/usr/bin/env python3
"""Small helpers for scripts/bench-accept (ports, waiting, report formatting).

  bench_util.py freeports N                  print N distinct free TCP ports on 127.0.0.1
  bench_util.py wait-port PORT TIMEOUT [PID] wait until 127.0.0.1:PORT accepts a connection;
                                             exit 1 on timeout, 2 if PID exited first
  bench_util.py listeners PORT              print "PID COMM" for every process holding a
                                             listening TCP socket on PORT (any address, IPv4
                                             or IPv6); exit 0 when there is none, 1 otherwise
  bench_util.py report RESULTS META          print the results table and a markdown block

RESULTS is a tab-separated file, one line per target:
  name  label  messages  seconds  queued  status
(queued is "-" for a target that keeps nothing, status is "ok" or a short reason).
META is a file of KEY=VALUE lines (command, date, machine, figures such as herald_rss_kib).
"""

import errno
import os
import socket
import subprocess
import sys
import time


def freeports(count):
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)  # keep it bound so the next pick differs
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    print(" ".join(str(p) for p in ports))


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_process(proc, grace):
    """Stops a subprocess.Popen: SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(port, timeout, pid=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            return 2
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return 0
        except OSError:
            time.sleep(0.1)
    return 1


def listening_inodes(port):
    """Socket inodes of listening TCP sockets (state 0A) whose local port is PORT."""
    want = f":{port:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == "0A" and parts[1].endswith(want):
                        inodes.add(parts[9])
        except OSError:
            pass
    return inodes


def listeners(port):
    """[(pid, comm)] of the processes holding a listening socket on PORT; a socket
    found in /proc/net but in no readable process's fds is reported as pid 0."""
    inodes = listening_inodes(port)
    if not inodes:
        return []
    found, seen = [], set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                seen.add(target[8:-1])
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                found.append((int(pid), comm))
                break
    if inodes - seen:
        found.append((0, f"{len(inodes - seen)} socket(s) of no visible process"))
    return found


def fmt_rate(messages, seconds):
    return f"{messages / seconds:,.0f}" if seconds > 0 else "-"


def report(results_path, meta_path):
    meta = {}
    with open(meta_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                meta[k] = v
    rows = []
    with open(results_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6:
                continue
            name, label, messages, seconds, queued, status = parts
            rows.append(dict(name=name, label=label, messages=int(messages),
                             seconds=float(seconds), queued=queued, status=status))
    by = {r["name"]: r for r in rows}

    def rate(r):
        return r["messages"] / r["seconds"] if r["seconds"] > 0 and r["status"] == "ok" else None

    ratio = None
    if "herald" in by and "postfix" in by and rate(by["herald"]) and rate(by["postfix"]):
        ratio = rate(by["herald"]) / rate(by["postfix"])
    rss_kib = meta.get("herald_rss_kib", "")
    rss = f"{int(rss_kib) / 1024:.1f} MiB" if rss_kib.isdigit() else "n/a"

    # Plain table for the terminal.
    head = ("target", "messages", "queued", "seconds", "msg/s", "status")
    table = [head] + [(r["label"], f"{r['messages']:,}", r["queued"] if r["queued"] == "-" else f"{int(r['queued']):,}",
                       f"{r['seconds']:.2f}", fmt_rate(r["messages"], r["seconds"]), r["status"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print()
    for i, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])] + [row[-1]]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print(f"Herald/Postfix ratio : {f'{ratio:.2f}x' if ratio else 'n/a'}")
    print(f"Herald peak RSS      : {rss}" + (" (VmHWM)" if rss != "n/a" else ""))
    for key in ("postfix_fsync", "herald_fsync"):
        if meta.get(key):
            print(f"{key.split('_')[0].capitalize()} fsync check".ljust(21) + f": {meta[key]}")

    # Ready-to-paste markdown for docs/benchmarks.md.
    print()
    print("----- markdown for docs/benchmarks.md -----")
    ran = [r["name"] for r in rows]
    fsyncers = " and ".join(n for n, k in (("Postfix", "postfix"), ("Herald", "herald")) if k in ran)
    messages = int(meta.get("messages", "0") or 0)
    size = int(meta.get("size", "0") or 0)
    size_h = f"{size // 1024} KiB" if size and size % 1024 == 0 else f"{size} B"
    print(f"### Acceptance: {messages:,} × {size_h} messages over {meta.get('sessions', '?')} SMTP sessions")
    print()
    print(f"- Command: `{meta.get('command', 'scripts/bench-accept')}`")
    print(f"- Date: {meta.get('date', '?')}")
    print(f"- Machine: {meta.get('machine', '?')}")
    print(f"- Load: `{meta.get('source_cmd', 'smtp-source')}` against each target in turn "
          f"(order: {meta.get('order', '?')}); queue and spool on {meta.get('fs', '?')}"
          + (f"; every message is fsync'd by {fsyncers} before its `250`." if fsyncers else "."))
    if "postfix" in ran:
        print(f"- Postfix: {meta.get('postfix_version', '?')}, private instance on loopback, "
              f"`defer_transports = smtp` (queued, never delivered), otherwise default settings "
              f"(fsync, in_flow_delay).")
    if "herald" in ran and meta.get("herald_bin"):
        print(f"- Herald: `{meta['herald_bin']}`, relay listener, TLS off.")
    print()
    print("| Target | Messages | Seconds | msg/s |")
    print("|---|---:|---:|---:|")
    for r in rows:
        mark = "" if r["status"] == "ok" else f" ({r['status']})"
        print(f"| {r['label']}{mark} | {r['messages']:,} | {r['seconds']:.2f} | {fmt_rate(r['messages'], r['seconds'])} |")
    print()
    print(f"Herald/Postfix: **{f'{ratio:.2f}×' if ratio else 'n/a'}**. Herald peak RSS: **{rss}**.")
    print("----- end markdown -----")


def main(argv):
    if len(argv) >= 2 and argv[1] == "freeports":
        freeports(int(argv[2]) if len(argv) > 2 else 1)
        return 0
    if len(argv) >= 4 and argv[1] == "wait-port":
        pid = int(argv[4]) if len(argv) > 4 and argv[4] else None
        return wait_port(int(argv[2]), float(argv[3]), pid)
    if len(argv) == 3 and argv[1] == "listeners":
        found = listeners(int(argv[2]))
        for pid, comm in found:
            print(pid, comm)
        return 1 if found else 0
    if len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
