#!/usr/bin/env python3
"""Helpers for scripts/bench-relay (sink with a message counter, injection, report).

  bench_relay_util.py sink PORT EXPECT DIR
      Run `smtp-sink -4 -c -u postfix -h sink.bench.test 127.0.0.1:PORT 256` as a child
      and follow its running counter (-c prints "sess=… quit=… mesg=N" after every
      message). Writes, atomically:
        DIR/status   "<count> <time of last change> <peak established connections>"
                     (every 0.25 s, and a last time on exit)
        DIR/reached  "<time.time() when the count reached EXPECT>" (once)
        DIR/first    "<time.time() when the first message was counted>" (once)
        DIR/sink.pid smtp-sink's process id (so that the caller can stop it by the
                     port it holds should this helper die first)
      Runs until SIGTERM/SIGINT, then stops smtp-sink and exits 0. Exit 2 when
      smtp-sink exits by itself. smtp-sink's other output goes to DIR/smtp-sink.out.

  bench_relay_util.py inject PORT MESSAGES SESSIONS DOMAINS SIZE DIR
      Send MESSAGES messages of SIZE payload bytes with smtp-source over SESSIONS
      sessions in all. DOMAINS = 1: one smtp-source, every recipient rcpt@bench.test.
      DOMAINS > 1: recipients rcpt@d01.bench.test … rcpt@dNN.bench.test, the same number
      of messages for each domain (±1). smtp-source takes one recipient address, so
      W = gcd(SESSIONS, DOMAINS) workers run in parallel, each with SESSIONS/W sessions
      and DOMAINS/W domains, cycling through its domains in rounds of about 200
      messages per domain (one smtp-source per step). Writes DIR/inject with
      "<t0> <t1>" (time.time() just before the first smtp-source started, and after
      the last one ended) and DIR/plan (one line per worker); exit 1 when any
      smtp-source failed (its output is in DIR/worker-N.out).

  bench_relay_util.py describe-load MESSAGES SESSIONS DOMAINS SIZE
      Print a one-line description of what `inject` runs, for the report.

  bench_relay_util.py logstats DELIVERY_JSONL
      Summarize Herald's delivery log: lines, results, distinct domains delivered,
      entries after a first attempt; one line of text.

  bench_relay_util.py report RESULTS META
      Print per repetition and scenario the runs, the ratios (Herald/Postfix, each
      target's share of the loopback ceiling), Herald's CPU ms per message and peak
      RSS; a summary over the repetitions (median, min–max); and a markdown block for
      docs/benchmarks.md.

RESULTS is tab-separated, one line per run:
  repetition scenario target label messages seconds inject_seconds status arrived
  peak_conns rss_kib cpu_seconds notes
(target: ceiling = smtp-source straight into smtp-sink, postfix or herald)
(seconds = first injection → last arrival at the sink; "-" where not measured).
META is KEY=VALUE lines.
"""

import math
import os
import re
import resource
import select
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_util import fmt_rate, stop_process  # noqa: E402  (shared with bench-accept and bench-queued)

SOURCE_BASE = ["-4", "-d", "-M", "bench.example", "-f", "bench@bench.example",
               "-S", "Herald relay benchmark"]
ROUND_MESSAGES = 200  # per domain and smtp-source step in the multi-domain load


# ---------------------------------------------------------------- sink
def write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def established(port):
    """Established TCP connections whose local end is 127.0.0.1:port (server side)."""
    want = f":{port:04X}"
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split(None, 4)
                if len(parts) > 3 and parts[3] == "01" and parts[1].endswith(want):
                    n += 1
    except OSError:
        pass
    return n


def children_cpu():
    """CPU seconds (user + system) of this process's children that have been waited for:
    the smtp-sink of a sink helper, every smtp-source of an injection."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sink(port, expect, outdir):
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    other = open(os.path.join(outdir, "smtp-sink.out"), "wb")
    proc = subprocess.Popen(
        ["smtp-sink", "-4", "-c", "-u", "postfix", "-h", "sink.bench.test",
         f"127.0.0.1:{port}", "256"],
        stdout=subprocess.PIPE, stderr=other, stdin=subprocess.DEVNULL)
    write_atomic(os.path.join(outdir, "sink.pid"), f"{proc.pid}\n")
    fd = proc.stdout.fileno()
    status_path = os.path.join(outdir, "status")
    reached_path = os.path.join(outdir, "reached")
    count, changed, peak, buf = 0, time.time(), 0, b""
    reached = False
    first_path = os.path.join(outdir, "first")
    next_status = 0.0
    rc = 0

    def status():
        write_atomic(status_path, f"{count} {changed:.6f} {peak}\n")

    status()
    while not stop["flag"]:
        try:
            ready, _, _ = select.select([fd], [], [], 0.25)
        except InterruptedError:
            continue
        if ready:
            data = os.read(fd, 65536)
            if not data:
                rc = 2  # smtp-sink exited
                break
            buf += data
            *records, buf = re.split(rb"[\r\n]", buf)
            for rec in reversed(records):
                m = re.search(rb"mesg=(\d+)", rec)
                if m:
                    n = int(m.group(1))
                    if n != count:
                        count, changed = n, time.time()
                    break
                if rec.strip():
                    other.write(rec + b"\n")
            if count > 0 and not os.path.exists(first_path):
                write_atomic(first_path, f"{changed:.6f}\n")
            if not reached and count >= expect:
                reached = True
                write_atomic(reached_path, f"{changed:.6f}\n")
        now = time.monotonic()
        if now >= next_status:
            peak = max(peak, established(port))
            status()
            next_status = now + 0.25
    stop_process(proc, 5)
    write_atomic(os.path.join(outdir, "cpu"), f"{children_cpu():.3f}\n")
    # Whatever was still in the pipe.
    try:
        rest = proc.stdout.read() or b""
    except (OSError, ValueError):
        rest = b""
    for rec in reversed(re.split(rb"[\r\n]", buf + rest)):
        m = re.search(rb"mesg=(\d+)", rec)
        if m:
            if int(m.group(1)) != count:
                count, changed = int(m.group(1)), time.time()
            break
    status()
    other.close()
    return rc


# ---------------------------------------------------------------- injection
def split(total, parts):
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def plan(messages, sessions, domains):
    """[(sessions, [(domain, count), ...]), ...], one entry per worker."""
    if domains == 1:
        return [(sessions, [("bench.test", messages)])]
    workers = math.gcd(sessions, domains)
    names = [f"d{i + 1:02d}.bench.test" for i in range(domains)]
    per_domain = split(messages, domains)
    rounds = max(1, round(max(per_domain) / ROUND_MESSAGES))
    result = []
    for w in range(workers):
        mine = list(range(w, domains, workers))  # d01, d11, d21, … for worker 0 of 10
        steps = []
        for r in range(rounds):
            for d in mine:
                n = split(per_domain[d], rounds)[r]
                if n:
                    steps.append((names[d], n))
        result.append((sessions // workers, steps))
    return result


def describe_load(messages, sessions, domains, size):
    if domains == 1:
        return (f"`smtp-source {' '.join(shq(w) for w in SOURCE_BASE)} -s {sessions} -l {size} "
                f"-m {messages} -t rcpt@bench.test 127.0.0.1:PORT`")
    p = plan(messages, sessions, domains)
    workers = len(p)
    per_worker_domains = domains // workers
    per_domain = split(messages, domains)
    rounds = max(1, round(max(per_domain) / ROUND_MESSAGES))
    step = split(per_domain[0], rounds)[0]
    return (f"{workers} parallel workers × `smtp-source … -s {sessions // workers} -l {size} "
            f"-m ~{step} -t rcpt@dNN.bench.test` ({sessions} sessions in all); each worker "
            f"owns {per_worker_domains} of the {domains} domains d01…d{domains:02d}.bench.test "
            f"and cycles through them {rounds}× ({messages // domains:,}"
            f"{'+' if messages % domains else ''} messages per domain)")


def shq(w):
    return w if re.fullmatch(r"[A-Za-z0-9_./,:@%+=-]+", w) else "'" + w.replace("'", "'\\''") + "'"


def inject(port, messages, sessions, domains, size, outdir):
    p = plan(messages, sessions, domains)
    with open(os.path.join(outdir, "plan"), "w") as f:
        for i, (s, steps) in enumerate(p):
            f.write(f"worker {i}: {s} sessions: " + ", ".join(f"{d}×{n}" for d, n in steps) + "\n")
    failures = []

    def worker(i, s, steps):
        with open(os.path.join(outdir, f"worker-{i}.out"), "ab") as out:
            for domain, n in steps:
                cmd = ["smtp-source", *SOURCE_BASE, "-s", str(min(s, n)), "-l", str(size),
                       "-m", str(n), "-t", f"rcpt@{domain}", f"127.0.0.1:{port}"]
                rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
                if rc != 0:
                    failures.append(f"worker {i}: smtp-source exit {rc} for {domain}")
                    return

    threads = [threading.Thread(target=worker, args=(i, s, steps)) for i, (s, steps) in enumerate(p)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.time()
    write_atomic(os.path.join(outdir, "cpu"), f"{children_cpu():.3f}\n")
    write_atomic(os.path.join(outdir, "inject"), f"{t0:.6f} {t1:.6f}\n")
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


# ---------------------------------------------------------------- delivery log
def logstats(path):
    import json
    from collections import Counter
    lines, results, domains, retries, bad, replies = 0, Counter(), set(), 0, 0, Counter()
    try:
        f = open(path)
    except OSError:
        print("no delivery log")
        return
    with f:
        for line in f:
            lines += 1
            try:
                e = json.loads(line)
            except ValueError:
                bad += 1
                continue
            results[e.get("result", "?")] += 1
            if e.get("result") == "delivered":
                domains.add(e.get("domain"))
            else:
                replies[f"{e.get('code', '-')} {str(e.get('reply', ''))[:60]}"] += 1
            if (e.get("attempt") or 1) > 1:
                retries += 1
    out = [f"{lines:,} lines", ", ".join(f"{k} {v:,}" for k, v in sorted(results.items())) or "empty",
           f"{len(domains)} domain(s) delivered"]
    if retries:
        out.append(f"{retries:,} entries with attempt > 1")
    if bad:
        out.append(f"{bad} unparsable lines")
    if replies:
        out.append("not delivered: " + "; ".join(f"{v}× {k}" for k, v in replies.most_common(3)))
    print("; ".join(out))


# ---------------------------------------------------------------- report
def median(values):
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


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
            p = line.rstrip("\n").split("\t")
            if len(p) not in (13, 14):
                continue
            rows.append(dict(rep=int(p[0]), scenario=p[1], target=p[2], label=p[3], messages=int(p[4]),
                             seconds=float(p[5]), inject=float(p[6]) if p[6] != "-" else None,
                             status=p[7], arrived=p[8], peak=p[9],
                             rss=int(p[10]) if p[10].isdigit() else None,
                             cpu=float(p[11]) if p[11] != "-" else None, notes=p[12],
                             peers=float(p[13]) if len(p) == 14 and p[13] != "-" else None))
    scenarios, reps = [], []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
        if r["rep"] not in reps:
            reps.append(r["rep"])
    labels = {r["target"]: r["label"] for r in rows}

    def rate(r):
        return r["messages"] / r["seconds"] if r and r["seconds"] > 0 and r["status"] == "ok" else None

    def scen_title(s):
        return f"{s} domain" + ("" if s == "1" else "s")

    def run(rep, s, target):
        return next((r for r in rows if r["rep"] == rep and r["scenario"] == s and r["target"] == target), None)

    def ratio(a, b):
        return a / b if a and b else None

    def cpu_ms(r):  # CPU milliseconds per message
        if r and r["cpu"] is not None and r["messages"] and r["status"] == "ok":
            return r["cpu"] * 1000 / r["messages"]
        return None

    def peers_ms(r):  # smtp-source + smtp-sink CPU milliseconds per message
        if r and r.get("peers") is not None and r["messages"] and r["status"] == "ok":
            return r["peers"] * 1000 / r["messages"]
        return None

    def busy(r):  # share of every core's time the run's programs (peers, and Herald) used
        if not r or r["status"] != "ok" or r["seconds"] <= 0 or r.get("peers") is None:
            return None
        used = r["peers"] + ((r["cpu"] or 0) if r["target"] == "herald" else 0)
        return used / (r["seconds"] * (os.cpu_count() or 1))

    def rss_mib(r):
        return r["rss"] / 1024 if r and r["rss"] else None

    def f_rate(x):
        return f"{x:,.0f}" if x else "-"

    def f_x(x):
        return f"{x:.2f}×" if x else "n/a"

    def f_pct(x):
        return f"{x * 100:.1f} %" if x else "n/a"

    def f_ms(x):
        return f"{x:.3f}" if x is not None else "n/a"

    def f_mib(x):
        return f"{x:.1f} MiB" if x else "n/a"

    def order(rep, s):
        return [r["target"] for r in rows if r["rep"] == rep and r["scenario"] == s and r["target"] != "ceiling"]

    # Per repetition: the derived figures of one run set.
    per = {}
    for rep in reps:
        for s in scenarios:
            c, h, pf = run(rep, s, "ceiling"), run(rep, s, "herald"), run(rep, s, "postfix")
            per[(rep, s)] = dict(
                ceiling=rate(c), herald=rate(h), postfix=rate(pf),
                ratio=ratio(rate(h), rate(pf)),
                herald_share=ratio(rate(h), rate(c)), postfix_share=ratio(rate(pf), rate(c)),
                cpu_ms=cpu_ms(h), rss=rss_mib(h), order=order(rep, s),
                floor_ms=peers_ms(c), peers_herald_ms=peers_ms(h), busy_ceiling=busy(c), busy_herald=busy(h))

    def table(head, body):
        t = [head] + body
        widths = [max(len(row[i]) for row in t) for i in range(len(head))]
        for i, row in enumerate(t):
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])] + [row[-1]]
            print("  ".join(cells))
            if i == 0:
                print("  ".join("-" * w for w in widths))

    for rep in reps:
        for s in scenarios:
            mine = [r for r in rows if r["rep"] == rep and r["scenario"] == s]
            if not mine:
                continue
            d = per[(rep, s)]
            print()
            print(f"== repetition {rep}, {scen_title(s)} (order: ceiling, {', '.join(d['order'])}) ==")
            table(("target", "messages", "arrived", "inject s", "seconds", "msg/s", "of ceiling", "peak conns", "status"),
                  [(r["label"], f"{r['messages']:,}", r["arrived"],
                    f"{r['inject']:.2f}" if r["inject"] is not None else "-",
                    f"{r['seconds']:.2f}" if r["seconds"] > 0 else "-", f_rate(rate(r)),
                    f_pct(ratio(rate(r), d["ceiling"])) if r["target"] != "ceiling" else "100 %",
                    r["peak"], r["status"]) for r in mine])
            print(f"Herald/Postfix            : {f_x(d['ratio'])}")
            print(f"share of the ceiling      : Herald {f_pct(d['herald_share'])}, Postfix {f_pct(d['postfix_share'])}")
            h = run(rep, s, "herald")
            if h:
                k = f"{h['cpu'] / (h['messages'] / 1000):.3f} s" if d["cpu_ms"] is not None else "n/a"
                print(f"Herald CPU per message    : {f_ms(d['cpu_ms'])} ms ({k} per 1,000 msgs, utime+stime)")
                print(f"Herald peak RSS (VmHWM)   : {f_mib(d['rss'])}")
            if d["floor_ms"] is not None:
                # A relay receives each message as smtp-sink does and sends it as
                # smtp-source does: the ceiling's CPU per message is the floor of that work.
                print(f"load's own CPU per message: ceiling run {f_ms(d['floor_ms'])} ms (smtp-source + smtp-sink; "
                      f"{f_pct(d['busy_ceiling'])} of {os.cpu_count()} cores busy)")
                if d["peers_herald_ms"] is not None and d["cpu_ms"] is not None:
                    total = d["peers_herald_ms"] + d["cpu_ms"]
                    bound = (os.cpu_count() or 1) * 1000 / total
                    print(f"                            Herald run {f_ms(d['peers_herald_ms'])} ms + Herald {f_ms(d['cpu_ms'])} ms "
                          f"= {f_ms(total)} ms ({f_pct(d['busy_herald'])} of the cores busy); "
                          f"all cores busy would allow {f_rate(bound)} msg/s = {f_pct(ratio(bound, d['ceiling']))} of the ceiling")
            for r in mine:
                if r["notes"]:
                    print(f"{r['label']}: {r['notes']}")

    # Summary over the repetitions: median and range of each figure.
    def summary(s, key):
        vals = [per[(rep, s)][key] for rep in reps if per[(rep, s)][key] is not None]
        return median(vals), (min(vals) if vals else None), (max(vals) if vals else None), len(vals)

    def f_sum(s, key, fmt):
        m, lo, hi, n = summary(s, key)
        if m is None:
            return "n/a"
        if n == 1:
            return fmt(m)
        return f"{fmt(m)} ({fmt(lo)}–{fmt(hi)})"

    cols = [("ceiling", "ceiling msg/s", f_rate), ("herald", "Herald msg/s", f_rate),
            ("postfix", "Postfix msg/s", f_rate), ("ratio", "Herald/Postfix", f_x),
            ("herald_share", "Herald of ceiling", f_pct), ("postfix_share", "Postfix of ceiling", f_pct),
            ("cpu_ms", "Herald CPU ms/msg", f_ms), ("rss", "Herald peak RSS", f_mib)]
    print()
    print(f"== summary over {len(reps)} repetition(s): median (min–max) ==")
    for s in scenarios:
        print(f"{scen_title(s)}:")
        for key, name, fmt in cols:
            if key == "rss":
                vals = [per[(rep, s)]["rss"] for rep in reps if per[(rep, s)]["rss"]]
                print(f"  {name.ljust(19)}: {f_mib(max(vals)) if vals else 'n/a'} (highest)")
            else:
                each = ", ".join(fmt(per[(rep, s)][key]) for rep in reps)
                print(f"  {name.ljust(19)}: {f_sum(s, key, fmt)}" + (f"   [each: {each}]" if len(reps) > 1 else ""))

    print()
    print("----- markdown for docs/benchmarks.md -----")
    messages = int(meta.get("messages", "0") or 0)
    size = int(meta.get("size", "0") or 0)
    size_h = f"{size // 1024} KiB" if size and size % 1024 == 0 else f"{size} B"
    print(f"### Relay, end to end: {messages:,} × {size_h} messages, {meta.get('sessions', '?')} SMTP sessions in, "
          f"{len(reps)} repetition(s)")
    print()
    print(f"- Command: `{meta.get('command', 'scripts/bench-relay')}`")
    print(f"- Date: {meta.get('date', '?')}")
    print(f"- Machine: {meta.get('machine', '?')}; load average {meta.get('loadavg', '?')}; "
          f"queue and spool on {meta.get('fs', '?')}")
    rev = meta.get("reversed", "")
    print("- Path: `smtp-source` → target on 127.0.0.1 → `smtp-sink` on 127.0.0.1 (a fresh sink, "
          "target and queue for every run). Per repetition and scenario: first the loopback ceiling "
          "(the same load from `smtp-source` straight into `smtp-sink`), then the targets in the order "
          f"{meta.get('order', '?')}" + (f" (odd repetitions) or {rev} (even ones)" if len(reps) > 1 and rev else "")
          + ". Seconds = first injection to the sink counting the last message; each run also waits "
          "until the target's queue is empty. Peak connections: established connections at the sink, "
          "sampled every 0.25 s. Every sink port was checked free before and after its sink.")
    for s in scenarios:
        if meta.get(f"load_{s}"):
            print(f"- Load, {scen_title(s)}: {meta[f'load_{s}']}.")
    print(f"- Sink: `{meta.get('sink_cmd', 'smtp-sink')}`.")
    if any(r["target"] == "postfix" for r in rows):
        print(f"- Postfix: {meta.get('postfix_version', '?')}, private instance on loopback, "
              f"{meta.get('postfix_settings', '')}; otherwise default settings (fsync of every "
              "queue file, in_flow_delay, connection cache on demand).")
    if any(r["target"] == "herald" for r in rows):
        print(f"- Herald: `{meta.get('herald_bin', 'herald')}`, {meta.get('herald_settings', '')}.")
    print()
    print("| Rep | Recipients | Target | Messages | Seconds | msg/s | Share of ceiling | Peak connections at the sink |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        mark = "" if r["status"] == "ok" else f" ({r['status']})"
        secs = f"{r['seconds']:.2f}" if r["seconds"] > 0 else "-"
        c = per[(r["rep"], r["scenario"])]["ceiling"]
        share = "—" if r["target"] == "ceiling" else f_pct(ratio(rate(r), c))
        print(f"| {r['rep']} | {scen_title(r['scenario'])} | {r['label']}{mark} | {r['messages']:,} | {secs} | "
              f"{f_rate(rate(r))} | {share} | {r['peak']} |")
    print()
    print("Herald CPU = utime+stime of the herald process (all threads) from just before the first "
          "injection until its queue was empty, per message; peak RSS = VmHWM.")
    print()
    print("| Rep | Recipients | Order | Ceiling msg/s | Herald msg/s | Postfix msg/s | Herald/Postfix "
          "| Herald of ceiling | Postfix of ceiling | Herald CPU ms/msg | Herald peak RSS |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rep in reps:
        for s in scenarios:
            d = per[(rep, s)]
            order_txt = " → ".join(labels.get(t, t).split(" ")[0] for t in d["order"])
            print(f"| {rep} | {scen_title(s)} | {order_txt} | {f_rate(d['ceiling'])} | {f_rate(d['herald'])} | "
                  f"{f_rate(d['postfix'])} | {'**' + f_x(d['ratio']) + '**' if d['ratio'] else 'n/a'} | "
                  f"{f_pct(d['herald_share'])} | {f_pct(d['postfix_share'])} | {f_ms(d['cpu_ms'])} | {f_mib(d['rss'])} |")
    if len(reps) > 1:
        print()
        print(f"Summary over the {len(reps)} repetitions, median (min–max); RSS: the highest.")
        print()
        print("| Recipients | Ceiling msg/s | Herald msg/s | Postfix msg/s | Herald/Postfix | Herald of ceiling "
              "| Postfix of ceiling | Herald CPU ms/msg | Herald peak RSS |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in scenarios:
            cells = [f_sum(s, key, fmt) for key, _, fmt in cols[:-1]]
            vals = [per[(rep, s)]["rss"] for rep in reps if per[(rep, s)]["rss"]]
            cells.append(f_mib(max(vals)) if vals else "n/a")
            print(f"| {scen_title(s)} | " + " | ".join(cells) + " |")
    print("----- end markdown -----")


def main(argv):
    if len(argv) == 5 and argv[1] == "sink":
        return sink(int(argv[2]), int(argv[3]), argv[4])
    if len(argv) == 8 and argv[1] == "inject":
        return inject(int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]), argv[7])
    if len(argv) == 6 and argv[1] == "describe-load":
        print(describe_load(int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])))
        return 0
    if len(argv) == 3 and argv[1] == "logstats":
        logstats(argv[2])
        return 0
    if len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
