#!/usr/bin/env python3
"""The driver of scripts/crash-loop: SIGKILL Herald N times under traffic, then check that
no acknowledged message was lost (Python 3 standard library only).

scripts/crash-loop starts PostgreSQL and copies the binary, then runs this with
--work DIR --bin HERALD --database-url URL --sink sink.py. This script:

1. writes DIR/herald.toml (relay + submission listeners, HTTP API, short retries, a
   route sending *.crash.test to the sink), checks it with `herald check-config`, makes
   an AUTH user (`herald passwd`) and a tenant (`herald tenant create`), starts the sink
   (DIR/sink) and `herald serve`, and creates two lists, imports them (CSV) and creates
   two campaigns over the HTTP API;
2. runs traffic from several threads until the last restart: SMTP relay sessions
   (several messages a session, several recipients a message), SMTP submission with AUTH
   PLAIN, POST /v1/messages batches, and the two campaigns (the first sent at once, the
   second after a third of the kills). Every message has a unique tag (X-Crash-Tag
   header; Message-ID <tag@crash.test> over SMTP; in the Subject for HTTP and campaign
   mail) and every recipient address is unique in the run, so a delivery names its
   (message, recipient) pair. Recipients mix plain addresses with the sink's
   failonce-<tag>@ (450 once), dropdataonce-<tag>@ (connection dropped in DATA once) and
   policyonce-<tag>@ (550 once: a bounce unless the attempt's outcome was lost in a kill);
3. kills Herald with SIGKILL N times, MIN..MAX seconds apart (except the kill right after
   each campaign's send, 0.05..0.5 s after it, to catch the expansion), restarting it on
   the same spool and database each time and waiting until its three listeners answer;
4. stops the traffic, waits until `herald queue list --json` is empty and the campaigns
   are `sent`, stops Herald with SIGTERM and the sink;
5. matches DIR/journal.jsonl (every acknowledgement: SMTP 250 with its queue id, HTTP 202
   body, campaign recipients once the campaign is `sending`; transactions without a
   reply are `inflight`) against DIR/sink/index.jsonl (and the DSNs' .eml files), and
   prints the figures and a verdict. Missing pairs are investigated in
   DIR/missing.txt (delivery.jsonl lines, spool files, the kills around them); a
   campaign that never reaches `sent` in DIR/campaign-<id>-not-sent.txt (its recipient
   rows that are not final, from PostgreSQL, against the sink and delivery.jsonl).
   A pair delivered twice is "in flight at a kill" when its first delivery came at most
   IN_FLIGHT_WINDOW before a kill (Herald had not yet written the outcome into the
   envelope), "made twice" when the two copies have different Message-IDs (the message
   was rendered again, e.g. a campaign chunk expanded a second time), else "unexplained".

Exit status 1 when an acknowledged pair is missing or the run could not be set up.
"""
import argparse, email, email.utils, glob, http.client, json, os, random, re, signal
import smtplib, socket, subprocess, sys, threading, time
from datetime import datetime

DOMAINS = [f"d{i}.crash.test" for i in range(5)]
# A duplicate whose first delivery came at most this long before a kill is "in flight at
# the kill": the sink had answered 250 but Herald had not yet written the outcome into
# the envelope (it logs, then persists on a committer thread).
IN_FLIGHT_WINDOW = 1.0
KILL_SLACK = 0.1
# The drain gives up on campaign stats that stay the same this long with an empty queue.
STUCK_GRACE = 60
USER, PASSWORD = "crash", "crash-loop-secret"


def log(msg):
    print(f"crash-loop: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(f"SET-UP FAILED: {msg}")
    raise SystemExit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def iso_to_epoch(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Journal:
    """Append-only JSON lines: ack, inflight, refused, kill, restart, campaign, phase."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, kind, **rec):
        rec = {"kind": kind, "t": time.time(), **rec}
        line = json.dumps(rec)
        with self.lock:
            self.f.write(line + "\n")


class Herald:
    def __init__(self, bin_, config, work, ports):
        self.bin, self.config, self.work, self.ports = bin_, config, work, ports
        self.proc = None
        self.out = open(os.path.join(work, "log", "herald.out"), "ab")

    def start(self):
        self.out.write(f"\n===== crash-loop: start at {time.time():.3f}\n".encode())
        self.out.flush()
        self.proc = subprocess.Popen([self.bin, "serve", "--config", self.config], cwd=self.work,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT)
        return self.proc.pid

    def listening(self):
        for port in (self.ports["relay"], self.ports["submission"]):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.settimeout(2)
                    if not s.recv(512).startswith(b"220"):
                        return False
            except OSError:
                return False
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=2)
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def wait_listening(self, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald serve exited with status {self.proc.returncode} while starting")
            if self.listening():
                return time.time() - t0
            time.sleep(0.05)
        raise RuntimeError(f"herald serve did not listen within {timeout} s")

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"herald did not stop within {timeout} s of SIGTERM: SIGKILL")
            self.kill9()
            return None


class API:
    def __init__(self, port, key):
        self.port, self.key = port, key

    def call(self, method, path, body=None, ctype="application/json", timeout=30):
        """(status, decoded JSON or text). OSError / HTTPException when there is no reply."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {self.key}"}
            if body is not None:
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                headers["Content-Type"] = ctype
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            try:
                return r.status, json.loads(data)
            except ValueError:
                return r.status, data.decode("utf-8", "replace")
        finally:
            c.close()


RCPT_KINDS = [("u-", 0.72), ("failonce-", 0.12), ("dropdataonce-", 0.12), ("policyonce-", 0.04)]


def recipient(rng, mtag, j):
    x, acc = rng.random(), 0.0
    prefix = RCPT_KINDS[0][0]
    for p, w in RCPT_KINDS:
        acc += w
        if x < acc:
            prefix = p
            break
    return f"{prefix}{mtag}-{j}@{rng.choice(DOMAINS)}"


def smtp_message(rng, tag, sender, rcpts):
    lines = [f"From: Crash loop <{sender}>", "To: " + ", ".join(f"<{r}>" for r in rcpts),
             f"Subject: crash {tag}", f"Message-ID: <{tag}@crash.test>",
             "Date: " + email.utils.formatdate(localtime=False), f"X-Crash-Tag: {tag}",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii", ""]
    n = rng.choice([3, 10, 40]) if rng.random() < 0.9 else 700  # ~50 KB now and then
    for i in range(n):
        lines.append(f"{tag} line {i:04d} " + "abcdefghij" * 6)
    lines.append(".leading dot, stuffed on the wire")
    return ("\r\n".join(lines) + "\r\n").encode()


class Traffic:
    def __init__(self, args, journal, ports, api, stop):
        self.args, self.journal, self.ports, self.api, self.stop = args, journal, ports, api, stop
        self.counts = {"smtp": 0, "submission": 0, "http": 0}
        self.lock = threading.Lock()

    def pause(self, rng, lo, hi):
        self.stop.wait(rng.uniform(lo, hi))

    # ---- SMTP (relay and submission) ----
    def smtp_worker(self, name, auth):
        rng = random.Random(f"{name}-{time.time()}")
        via = "submission" if auth else "smtp"
        port = self.ports["submission" if auth else "relay"]
        seq = 0
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.crash.test", timeout=30)
            except (OSError, smtplib.SMTPException):
                self.stop.wait(0.2)
                continue
            state = {"phase": "session", "tag": None, "rcpts": []}
            try:
                s.ehlo("client.crash.test")
                if auth:
                    s.user, s.password = USER, PASSWORD
                    s.auth("PLAIN", s.auth_plain)
                for _ in range(rng.randint(2, 6)):
                    if self.stop.is_set():
                        break
                    seq += 1
                    tag = f"{name}-{seq:06d}"
                    self.transaction(s, rng, via, tag, state)
                    self.pause(rng, *self.args.smtp_pause)
                state["phase"] = "quit"
                s.quit()
            except (OSError, smtplib.SMTPException) as e:
                if state["phase"] == "dot":
                    self.journal.write("inflight", via=via, tag=state["tag"], rcpts=state["rcpts"],
                                       message_id=f"<{state['tag']}@crash.test>", error=repr(e)[:200])
                self.stop.wait(0.1)
            finally:
                try:
                    s.close()
                except OSError:
                    pass

    def transaction(self, s, rng, via, tag, state):
        sender = f"s-{tag}@snd.crash.test"
        rcpts = [recipient(rng, tag, j) for j in range(rng.choice([1, 1, 2, 3, 4, 6]))]
        state.update(phase="mail", tag=tag, rcpts=[])
        code, resp = s.mail(sender)
        if code != 250:
            self.journal.write("refused", via=via, tag=tag, stage="mail", code=code, reply=resp.decode(errors="replace"))
            s.rset()
            return
        accepted = []
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code in (250, 251):
                accepted.append(r)
            else:
                self.journal.write("refused", via=via, tag=tag, stage="rcpt", rcpt=r, code=code,
                                   reply=resp.decode(errors="replace"))
        if not accepted:
            s.rset()
            return
        state["phase"] = "data"
        s.putcmd("data")
        code, resp = s.getreply()
        if code != 354:
            self.journal.write("refused", via=via, tag=tag, stage="data", code=code, reply=resp.decode(errors="replace"))
            s.rset()
            return
        body = re.sub(rb"(?m)^\.", b"..", smtp_message(rng, tag, sender, accepted)) + b".\r\n"
        state.update(phase="dot", rcpts=accepted)
        s.send(body)
        code, resp = s.getreply()
        state["phase"] = "between"
        text = resp.decode(errors="replace")
        if code == 250:
            m = re.search(r"queued as (\S+)", text)
            self.journal.write("ack", via=via, tag=tag, rcpts=accepted, queue_id=m.group(1) if m else None,
                               message_id=f"<{tag}@crash.test>", reply=f"{code} {text}")
            with self.lock:
                self.counts[via] += 1
        else:
            self.journal.write("refused", via=via, tag=tag, stage="dot", code=code, reply=text, rcpts=accepted)

    # ---- POST /v1/messages ----
    def http_worker(self, name):
        rng = random.Random(f"{name}-{time.time()}")
        seq = 0
        while not self.stop.is_set():
            seq += 1
            btag = f"{name}-{seq:05d}"
            recips = []
            for j in range(rng.randint(*self.args.http_batch)):
                mtag = f"{btag}-m{j}"
                recips.append({"email": recipient(rng, mtag, 0), "first_name": f"F{j}", "attributes": {"tag": mtag}})
            body = json.dumps({
                "from": f"Crash loop <s-{btag}@snd.crash.test>", "subject": "crash {{attributes.tag}}",
                "text": "Hello {{first_name}}, this is {{attributes.tag}}.\n", "headers": {"X-Crash-Tag": btag},
                "recipients": recips})
            c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=60)
            try:
                c.connect()
            except OSError:
                c.close()
                self.stop.wait(0.2)
                continue
            try:
                c.request("POST", "/v1/messages", body=body,
                          headers={"Authorization": f"Bearer {self.api.key}", "Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                self.journal.write("inflight", via="http", tag=btag, rcpts=[x["email"] for x in recips],
                                   error=repr(e)[:200])
                self.stop.wait(0.2)
                continue
            finally:
                c.close()
            if r.status == 202:
                reply = json.loads(data)
                self.journal.write("ack", via="http", tag=btag, body=reply,
                                   tags={x["email"]: x["attributes"]["tag"] for x in recips})
                with self.lock:
                    self.counts["http"] += 1
            else:
                self.journal.write("refused", via="http", tag=btag, code=r.status, reply=data[:500].decode(errors="replace"),
                                   rcpts=[x["email"] for x in recips])
            self.pause(rng, *self.args.http_pause)


def run_cmd(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def write_config(args, work, ports, password_hash):
    cfg = f"""# written by scripts/crash-loop
[smtp]
hostname = "herald.crash-loop.invalid"
shutdown_grace = "10s"

[spool]
path = "{work}/spool"
journal = {"true" if args.spool_journal else "false"}

[log]
path = "{work}/log"
level = "info"

[[listener]]
address = "127.0.0.1:{ports['relay']}"
role = "relay"
trusted_networks = ["127.0.0.0/8"]
tls = "off"

[[listener]]
address = "127.0.0.1:{ports['submission']}"
role = "submission"
tls = "off"
allow_plaintext_auth = true

[[user]]
name = "{USER}"
password_hash = "{password_hash}"

[delivery]
minimal_backoff = "1s"
maximal_backoff = "2s"
rescan_interval = "2s"
connect_timeout = "3s"
command_timeout = "5s"
data_timeout = "5s"
dot_timeout = "10s"
idle_timeout = "3s"

[[route]]
domain = "*.crash.test"
host = "127.0.0.1:{ports['sink']}"
tls = "off"

[http]
address = "127.0.0.1:{ports['http']}"
public_url = "http://127.0.0.1:{ports['http']}"

[database]
url = "{args.database_url}"
"""
    path = os.path.join(work, "herald.toml")
    with open(path, "w") as f:
        f.write(cfg)
    return path


def setup_campaign(api, journal, name, size, rate):
    st, lst = api.call("POST", "/v1/lists", {"name": name})
    if st != 201:
        fail(f"POST /v1/lists answered {st}: {lst}")
    rng = random.Random(name)
    rcpts, csv = [], ["email,first_name,tag"]
    for i in range(size):
        tag = f"{name}-{i:05d}"
        addr = recipient(rng, tag, 0)
        rcpts.append(addr)
        csv.append(f"{addr},P{i},{tag}")
    st, rep = api.call("POST", f"/v1/lists/{lst['id']}/import", "\n".join(csv) + "\n", ctype="text/csv", timeout=120)
    if st != 200 or rep.get("imported") != size:
        fail(f"import into list {lst['id']} answered {st}: {str(rep)[:500]}")
    st, camp = api.call("POST", "/v1/campaigns", {
        "name": name, "from": "Crash loop <news@crash.test>", "subject": "crash {{attributes.tag}}",
        "html": "<p>Hello {{first_name}}, this is {{attributes.tag}}.</p>"
                "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>",
        "list_ids": [lst["id"]], "send_rate": rate})
    if st != 201:
        fail(f"POST /v1/campaigns answered {st}: {camp}")
    journal.write("campaign", campaign=camp["id"], name=name, list=lst["id"], rate=rate, rcpts=rcpts)
    log(f"campaign {camp['id']} ({name}): {size} recipients, send_rate {rate}")
    return {"id": camp["id"], "name": name, "rcpts": rcpts, "acked": False}


def send_campaign(api, journal, camp, stop_all):
    """POST send until the campaign is sending (or sent); then every recipient is acknowledged."""
    cid = camp["id"]
    while not stop_all.is_set():
        try:
            st, body = api.call("POST", f"/v1/campaigns/{cid}/send", timeout=30)
        except (OSError, http.client.HTTPException) as e:
            journal.write("note", what=f"campaign {cid} send: no reply ({e!r})")
            st, body = None, None
        if st == 202 and isinstance(body, dict) and body.get("status") in ("sending", "sent"):
            journal.write("ack", via="campaign", campaign=cid, rcpts=camp["rcpts"], reply=body.get("status"))
            camp["acked"] = True
            return
        # No reply, or 409: look at the campaign's status once Herald answers.
        while not stop_all.is_set():
            try:
                st2, c = api.call("GET", f"/v1/campaigns/{cid}", timeout=10)
                break
            except (OSError, http.client.HTTPException):
                stop_all.wait(0.3)
        else:
            return
        if st2 == 200 and c.get("status") in ("sending", "sent", "paused"):
            journal.write("ack", via="campaign", campaign=cid, rcpts=camp["rcpts"], reply=f"status {c.get('status')}")
            camp["acked"] = True
            return
        journal.write("note", what=f"campaign {cid} send answered {st}, status {c.get('status') if st2 == 200 else st2}; retrying")
        stop_all.wait(0.5)


def campaign_stats(api, camps, timeout=2):
    out = {}
    for c in camps:
        try:
            st, s = api.call("GET", f"/v1/campaigns/{c['id']}/stats", timeout=timeout)
            if st == 200:
                out[str(c["id"])] = {k: s.get(k) for k in ("status", "total", "expanded", "sent", "deferred",
                                                           "bounced", "failed", "remaining")}
        except (OSError, http.client.HTTPException):
            out[str(c["id"])] = None
    return out


# ---------------------------------------------------------------- analysis

def analyse(work, journal_path, kills_wanted):
    acked = {}            # rcpt -> dict(via, tag, queue_id, message_id, t)
    inflight = []         # records
    refused = []
    kills = []
    campaigns = {}
    phases = {}
    for line in open(journal_path):
        r = json.loads(line)
        k = r["kind"]
        if k == "ack":
            if r["via"] in ("smtp", "submission"):
                for a in r["rcpts"]:
                    acked[a.lower()] = dict(via=r["via"], tag=r["tag"], queue_id=r.get("queue_id"),
                                            message_id=r["message_id"], t=r["t"])
            elif r["via"] == "http":
                for m in r["body"].get("messages", []):
                    a = m["email"].lower()
                    acked[a] = dict(via="http", tag=r["tags"].get(m["email"], r["tag"]), queue_id=m.get("id"),
                                    message_id=m.get("message_id"), t=r["t"])
            elif r["via"] == "campaign":
                for a in r["rcpts"]:
                    acked[a.lower()] = dict(via="campaign", tag=f"campaign {r['campaign']}", queue_id=None,
                                            message_id=None, t=r["t"])
        elif k == "inflight":
            inflight.append(r)
        elif k == "refused":
            refused.append(r)
        elif k == "kill":
            kills.append(r)
        elif k == "campaign":
            campaigns[r["campaign"]] = r
        elif k == "phase":
            phases[r["name"]] = r["t"]

    # what the sink received
    deliveries = {}       # rcpt -> [(n, time, message_id, mail_from)]
    dsns = {}             # failed recipient -> [(n, time)]
    dsn_count = 0
    sink = os.path.join(work, "sink")
    index = os.path.join(sink, "index.jsonl")
    if os.path.exists(index):
        for line in open(index):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("mail_from") in ("", "<>", None):
                dsn_count += 1
                try:
                    raw = open(os.path.join(sink, f"{e['n']:07d}.eml"), "rb").read().decode("utf-8", "replace")
                except OSError:
                    continue
                for block in re.split(r"\r?\n\r?\n", raw):
                    m = re.search(r"(?im)^Final-Recipient:\s*rfc822;\s*<?([^\s>]+)>?", block)
                    if m and re.search(r"(?im)^Action:\s*failed", block):
                        dsns.setdefault(m.group(1).lower(), []).append((e["n"], e["time"]))
                continue
            for a in e.get("rcpts", []):
                deliveries.setdefault(a.lower(), []).append((e["n"], e["time"], e.get("message_id", ""), e.get("mail_from")))

    # Herald's delivery log
    dlog = {}
    for path in sorted(glob.glob(os.path.join(work, "log", "delivery.jsonl*")), reverse=True):
        for line in open(path, errors="replace"):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            try:
                e["_t"] = iso_to_epoch(e["time"])
            except (KeyError, ValueError):
                e["_t"] = 0
            dlog.setdefault(e.get("recipient", "").lower(), []).append(e)

    kill_times = sorted(k["t"] for k in kills)
    res = {"acked": acked, "inflight": inflight, "refused": refused, "kills": kills, "campaigns": campaigns}
    by_kind = {}
    msgs_by_kind = {}
    for a, info in acked.items():
        by_kind[info["via"]] = by_kind.get(info["via"], 0) + 1
        msgs_by_kind.setdefault(info["via"], set()).add(info["tag"] if info["via"] != "campaign" else a)
    delivered = {a for a in acked if a in deliveries}
    bounced = {a for a in acked if a not in deliveries and a in dsns}
    both = {a for a in acked if a in deliveries and a in dsns}
    missing = sorted(a for a in acked if a not in deliveries and a not in dsns)
    mismatched = []
    for a in delivered:
        want = acked[a]["message_id"]
        if want:
            got = deliveries[a][0][2]
            if got.strip("<>") != want.strip("<>"):
                mismatched.append((a, want, got))

    inflight_rcpts = {}
    for r in inflight:
        for a in r.get("rcpts", []):
            inflight_rcpts[a.lower()] = r
    inflight_delivered = sum(1 for a in inflight_rcpts if a in deliveries and a not in acked)
    unexpected = sorted(a for a in deliveries if a not in acked and a not in inflight_rcpts)
    dups = []
    for a, ds in deliveries.items():
        if len(ds) < 2:
            continue
        ds = sorted(ds, key=lambda d: d[1])
        t1, t2 = ds[0][1], ds[1][1]
        # The sink stamps a message once it has all of it, so a kill up to KILL_SLACK
        # before that stamp still caught Herald waiting for the sink's 250.
        between = [k for k in kill_times if t1 - KILL_SLACK <= k <= t2]
        mids = {d[2].strip("<>") for d in ds}
        done = [e for e in dlog.get(a, []) if e.get("result") == "delivered"]
        qids = sorted({e.get("queue_id") for e in done if e.get("queue_id")})
        attempts = [e.get("attempt") for e in sorted(done, key=lambda e: e["_t"])]
        d = dict(rcpt=a, times=[x[1] for x in ds], ns=[x[0] for x in ds], qids=qids, attempts=attempts,
                 kill_no=(kill_times.index(between[0]) + 1) if between else None,
                 delta=(between[0] - t1) if between else None,
                 via=acked.get(a, {}).get("via") or ("in flight" if a in inflight_rcpts else "unacknowledged"))
        if len(mids) > 1:
            # Another Message-ID: the message was made a second time, not sent twice
            # from one spool file (for a campaign: its chunk expanded again).
            d["cls"] = "remade"
            d["why"] = (f"a second message was made for it (Message-IDs differ; queue id {', '.join(qids)}, "
                        f"delivery attempts {attempts}); "
                        + (f"first delivered {d['delta']:+.2f} s before kill #{d['kill_no']}" if between
                           else "both deliveries by the same process, no kill between"))
        elif between and d["delta"] <= IN_FLIGHT_WINDOW:
            d["cls"] = "inflight"
            d["why"] = (f"in flight at kill #{d['kill_no']}: delivered {d['delta']:+.3f} s before it, outcome not yet "
                        f"in the spool (queue id {', '.join(qids)}, delivery attempts {attempts})")
        else:
            d["cls"] = "unexplained"
            d["why"] = ((f"delivered {d['delta']:.2f} s before kill #{d['kill_no']}, longer than an outcome takes "
                         f"to reach the spool" if between else "no kill between the two deliveries")
                        + f" (queue id {', '.join(qids)}, delivery attempts {attempts})")
        dups.append(d)
    # A pair both bounced and delivered: the DSN said it failed (a 550 at the first
    # attempt), and later a copy arrived anyway. Either that outcome had not reached the
    # spool when Herald was killed (the same message retried), or the copy that arrived
    # was rendered after the failure (its Date: is later: the message was made again).
    both_info = []
    for a in sorted(both):
        fails = sorted(e["_t"] for e in dlog.get(a, []) if e.get("result") == "failed")
        ft = fails[0] if fails else min(t for _, t in dsns[a])
        n = sorted(deliveries[a], key=lambda d: d[1])[-1][0]
        rendered = None
        try:
            with open(os.path.join(sink, f"{n:07d}.eml"), "rb") as f:
                msg = email.message_from_binary_file(f)
            rendered = email.utils.parsedate_to_datetime(msg["Date"]).timestamp()
        except (OSError, TypeError, ValueError):
            pass
        near = [k for k in kill_times if ft - KILL_SLACK <= k <= ft + IN_FLIGHT_WINDOW]
        if rendered is not None and rendered >= int(ft) + 1:
            cls, why = "remade", f"failed at {ft:.3f}, the copy delivered was rendered later (Date: {msg['Date']})"
        elif near:
            cls, why = "inflight", (f"failed {near[0] - ft:+.3f} s before kill #{kill_times.index(near[0]) + 1}: "
                                    f"the outcome had not reached the spool, the retry was accepted")
        elif rendered is not None and int(rendered) == int(ft):
            cls, why = "unclear", (f"failed at {ft:.3f}, no kill within {IN_FLIGHT_WINDOW} s; the copy delivered "
                                   f"was rendered in that same second (Date: {msg['Date']}): likely made again")
        else:
            cls, why = "unexplained", f"failed at {ft:.3f}, no kill within {IN_FLIGHT_WINDOW} s"
        both_info.append(dict(rcpt=a, cls=cls, why=why, via=acked[a]["via"]))
    res.update(both_info=both_info)
    res.update(by_kind=by_kind, msgs_by_kind={k: len(v) for k, v in msgs_by_kind.items()}, delivered=delivered,
               bounced=bounced, both=both, missing=missing, mismatched=mismatched, dups=dups,
               inflight_rcpts=inflight_rcpts, inflight_delivered=inflight_delivered, unexpected=unexpected,
               dsn_count=dsn_count, deliveries=deliveries, dlog=dlog, kill_times=kill_times, phases=phases)
    return res


def investigate_missing(work, res, out_path):
    """Where each missing pair was last seen."""
    spool_files = {}
    for path in glob.glob(os.path.join(work, "spool", "**", "*"), recursive=True):
        base = os.path.basename(path)
        stem = base.rsplit(".", 1)[0]
        spool_files.setdefault(stem, []).append(os.path.relpath(path, work))
    lines = []
    kt = res["kill_times"]
    for a in res["missing"]:
        info = res["acked"][a]
        before = [i + 1 for i, k in enumerate(kt) if k <= info["t"]]
        after = [(i + 1, k - info["t"]) for i, k in enumerate(kt) if k > info["t"]]
        lines.append(f"MISSING {a}  via {info['via']}  tag {info['tag']}  queue id {info['queue_id']}  "
                     f"acknowledged at {info['t']:.3f} (after kill #{before[-1] if before else 0}; next kill "
                     + (f"#{after[0][0]} {after[0][1]:+.2f} s" if after else "none") + ")")
        entries = res["dlog"].get(a, [])
        qids = {e.get("queue_id") for e in entries} | ({info["queue_id"]} if info["queue_id"] else set())
        for e in entries:
            lines.append(f"    delivery.jsonl {e.get('time')} {e.get('queue_id')} {e.get('result')} "
                         f"attempt {e.get('attempt')} {e.get('code')} {str(e.get('reply'))[:120]}")
        if not entries:
            lines.append("    delivery.jsonl: no line for this recipient")
        for q in sorted(x for x in qids if x):
            files = spool_files.get(q, [])
            lines.append(f"    spool files for {q}: {files if files else 'none'}")
            for f in files:
                if f.endswith(".env"):
                    try:
                        env = json.load(open(os.path.join(work, f)))
                        for r in env.get("recipients", []):
                            if r.get("address", "").lower() == a:
                                lines.append(f"      envelope: {json.dumps(r)[:300]}")
                    except (OSError, ValueError) as e:
                        lines.append(f"      envelope unreadable: {e}")
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def stuck_campaign_recipients(database_url, cid):
    """Recipients of campaign `cid` whose row is not final: [(email, state, queue_id, updated_at)]."""
    psql = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1:]), None) or "psql"
    r = run_cmd([psql, database_url, "-AtF", "\t", "-c",
                 "SELECT s.email, r.state, coalesce(r.queue_id, ''), r.updated_at FROM campaign_recipients r "
                 f"JOIN subscribers s ON s.id = r.subscriber_id WHERE r.campaign_id = {int(cid)} "
                 "AND r.state IN ('pending', 'queued', 'deferred', 'held') ORDER BY s.email"], timeout=60)
    if r.returncode != 0:
        return None, r.stderr.strip()[:300]
    return [tuple(l.split("\t")) for l in r.stdout.splitlines() if l], None


def queue_list(bin_, config):
    r = run_cmd([bin_, "queue", "list", "--json", "--config", config], timeout=120)
    if r.returncode != 0:
        return None, r.stderr.strip()[:300]
    try:
        return json.loads(r.stdout), None
    except ValueError as e:
        return None, f"unreadable JSON: {e}"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="SIGKILL Herald N times under traffic; count lost acknowledgements.")
    ap.add_argument("n", nargs="?", type=int, default=None)
    ap.add_argument("--seconds-between", nargs=2, type=float, metavar=("MIN", "MAX"), default=[0.5, 3.0])
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--spool-journal", action="store_true")
    args = ap.parse_args()
    n_kills = args.n if args.n is not None else (3 if args.short else 50)
    smin, smax = args.seconds_between
    if n_kills < 1 or smin < 0 or smax < smin:
        fail("N must be at least 1 and 0 <= MIN <= MAX")
    if args.short:
        args.smtp_pause, args.http_pause, args.http_batch = (0.05, 0.3), (0.3, 0.8), (3, 10)
        relay_threads, sub_threads, http_threads = 1, 1, 1
        sizes = (300, 200)
    else:
        args.smtp_pause, args.http_pause, args.http_batch = (0.02, 0.15), (0.2, 0.6), (5, 20)
        relay_threads, sub_threads, http_threads = 2, 1, 1
        sizes = (5000, 3000)
    kill_rng = random.Random(args.seed)
    work = args.work
    t_start = time.time()
    for d in ("log", "sink"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    journal_path = os.path.join(work, "journal.jsonl")
    journal = Journal(journal_path)

    # ---- set-up
    ports = {k: free_port() for k in ("relay", "submission", "http", "sink")}
    r = run_cmd([args.bin, "passwd"], input=PASSWORD + "\n")
    if r.returncode != 0 or not r.stdout.strip():
        fail(f"herald passwd: {r.stderr.strip()}")
    config = write_config(args, work, ports, r.stdout.strip())
    r = run_cmd([args.bin, "check-config", "--config", config])
    if r.returncode != 0:
        fail(f"herald check-config --config {config}:\n{r.stdout}{r.stderr}")
    r = run_cmd([args.bin, "tenant", "create", "crash-loop", "--config", config])
    m = re.search(r"(?m)^api_key:\s*(\S+)", r.stdout)
    if r.returncode != 0 or not m:
        fail(f"herald tenant create: {r.stdout}{r.stderr}")
    api = API(ports["http"], m.group(1))
    sink_out = open(os.path.join(work, "log", "sink.out"), "ab")
    sink = subprocess.Popen([sys.executable, args.sink, "--port", str(ports["sink"]), "--out", os.path.join(work, "sink")],
                            stdin=subprocess.DEVNULL, stdout=sink_out, stderr=subprocess.STDOUT)
    herald = Herald(args.bin, config, work, ports)
    stop_all = threading.Event()
    stop_traffic = threading.Event()
    threads = []
    exit_code = 1
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", ports["sink"]), timeout=1).close()
                break
            except OSError:
                if sink.poll() is not None:
                    fail("the sink exited (see log/sink.out)")
                time.sleep(0.1)
        else:
            fail("the sink did not listen")
        pid = herald.start()
        try:
            herald.wait_listening()
        except RuntimeError as e:
            fail(f"{e} (see {work}/log/herald.out, {work}/log/herald.log)")
        journal.write("start", pid=pid)
        log(f"herald pid {pid}: relay {ports['relay']}, submission {ports['submission']}, "
            f"http {ports['http']}, sink {ports['sink']}")

        expected_run = n_kills * ((smin + smax) / 2 + 1.0)
        rate1 = f"{max(1.0, sizes[0] / (0.7 * expected_run)):.2f}/s"
        rate2 = f"{max(1.0, sizes[1] / (0.5 * expected_run)):.2f}/s"
        camps = [setup_campaign(api, journal, "camp1", sizes[0], rate1),
                 setup_campaign(api, journal, "camp2", sizes[1], rate2)]
        second_at = max(1, n_kills // 3)

        # ---- traffic
        traffic = Traffic(args, journal, ports, api, stop_traffic)
        for i in range(relay_threads):
            threads.append(threading.Thread(target=traffic.smtp_worker, args=(f"r{i}", False), daemon=True))
        for i in range(sub_threads):
            threads.append(threading.Thread(target=traffic.smtp_worker, args=(f"s{i}", True), daemon=True))
        for i in range(http_threads):
            threads.append(threading.Thread(target=traffic.http_worker, args=(f"h{i}",), daemon=True))
        journal.write("phase", name="traffic")
        t_traffic = time.time()
        for t in threads:
            t.start()
        # The first campaign goes at once; the kill after each campaign's send comes
        # 0.05..0.5 s after it, to catch its expansion (the others MIN..MAX apart).
        send_campaign(api, journal, camps[0], stop_all)
        soon = True

        # ---- the kills
        restarts = []
        for i in range(1, n_kills + 1):
            time.sleep(kill_rng.uniform(0.05, min(0.5, smax)) if soon else kill_rng.uniform(smin, smax))
            soon = False
            stats = campaign_stats(api, camps, timeout=1)
            if herald.proc.poll() is not None:
                journal.write("note", what=f"herald exited by itself with {herald.proc.returncode} before kill {i}")
                log(f"herald exited by itself ({herald.proc.returncode}) before kill {i}")
            else:
                kill_t = time.time()
                herald.kill9()
                journal.write("kill", n=i, pid=herald.proc.pid, t=kill_t, stats=stats)
            pid = herald.start()
            try:
                took = herald.wait_listening()
            except RuntimeError as e:
                fail(f"restart after kill {i}: {e} (see {work}/log/herald.out)")
            restarts.append(took)
            journal.write("restart", n=i, pid=pid, took=took)
            summary = " ".join(f"c{k}:{v['expanded']}/{v['total']} sent {v['sent']}" for k, v in stats.items() if v)
            log(f"kill {i}/{n_kills} done, listening again after {took:.2f} s "
                f"(acks: smtp {traffic.counts['smtp']}, submission {traffic.counts['submission']} messages, "
                f"http {traffic.counts['http']} batches; {summary})")
            if i == second_at:
                send_campaign(api, journal, camps[1], stop_all)
                soon = True

        # ---- drain
        stop_traffic.set()
        for t in threads:
            t.join(60)
        t_drain = time.time()
        journal.write("phase", name="drain")
        log(f"traffic stopped after {t_drain - t_traffic:.1f} s; draining (up to {args.drain_timeout:.0f} s)")
        # Once the queue is empty nothing can move the campaigns' stats any more but the
        # stats recorder: when they stay the same for STUCK_GRACE s, waiting longer is moot.
        drained, last, still_since, stuck = False, None, None, False
        while time.time() - t_drain < args.drain_timeout:
            rows, err = queue_list(args.bin, config)
            stats = campaign_stats(api, [c for c in camps if c["acked"]], timeout=10)
            camps_done = all(v and v.get("status") == "sent" for v in stats.values())
            if rows == [] and camps_done:
                last = (0, stats)
                drained = True
                break
            if rows == [] and last is not None and last[0] == 0 and last[1] == stats:
                still_since = still_since or time.time()
                if time.time() - still_since >= STUCK_GRACE:
                    stuck = True
                    break
            else:
                still_since = None
            last = (len(rows) if rows is not None else err, stats)
            time.sleep(2)
        t_drained = time.time()
        journal.write("phase", name="drained" if drained else "drain-timeout", queue=last[0], stats=last[1])
        if drained:
            log(f"drained in {t_drained - t_drain:.1f} s")
        elif stuck:
            log(f"queue empty but campaigns not sent, unchanged for {STUCK_GRACE} s: {last[1]}")
        else:
            log(f"NOT drained after {args.drain_timeout:.0f} s: queue {last[0]}, campaigns {last[1]}")
        final_stats = last[1] if last else {}
        rc = herald.terminate()
        journal.write("phase", name="stopped", rc=rc)
        stop_all.set()
        sink.send_signal(signal.SIGINT)
        try:
            sink.wait(15)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait()
        queue_left = None
        if not drained:
            rows, _ = queue_list(args.bin, config)
            queue_left = rows
        t_end = time.time()

        # ---- the count
        res = analyse(work, journal_path, n_kills)
        acked = res["acked"]
        kills = res["kills"]
        print()
        print("crash-loop summary")
        print(f"kills done          : {len(kills)} of {n_kills} (SIGKILL {smin:g}..{smax:g} s apart; "
              f"restart to listening: mean {sum(restarts) / max(1, len(restarts)):.2f} s, max {max(restarts or [0]):.2f} s)")
        print(f"elapsed             : {t_end - t_start:.1f} s (traffic with kills {t_drain - t_traffic:.1f} s, "
              f"drain {t_drained - t_drain:.1f} s{'' if drained else ' NOT DRAINED'})")
        msgs = res["msgs_by_kind"]
        print(f"acknowledged        : {len(acked)} (message, recipient) pairs in {sum(msgs.values())} messages")
        for kind in ("smtp", "submission", "http", "campaign"):
            extra = ""
            if kind == "campaign":
                extra = " (" + ", ".join(f"campaign {c['id']} {len(c['rcpts'])} recipients"
                                         + ("" if c["acked"] else " NOT SENT") for c in camps) + ")"
            print(f"  {kind:<17} : {res['by_kind'].get(kind, 0)} pairs, {msgs.get(kind, 0)} messages{extra}")
        print(f"delivered           : {len(res['delivered'])}")
        print(f"bounced             : {len(res['bounced'])} (DSNs received: {res['dsn_count']}; "
              f"pairs both delivered and bounced: {len(res['both'])})")
        print(f"missing             : {len(res['missing'])}")
        dups = res["dups"]
        cls = {c: sum(1 for d in dups if d["cls"] == c) for c in ("inflight", "remade", "unexplained")}
        print(f"duplicates          : {len(dups)} pairs delivered more than once: {cls['inflight']} in flight at a kill, "
              f"{cls['remade']} made twice (another Message-ID), {cls['unexplained']} unexplained")
        odd = [d for d in sorted(dups, key=lambda d: d["times"][0]) if d["cls"] != "inflight"]
        inf = [d for d in sorted(dups, key=lambda d: d["times"][0]) if d["cls"] == "inflight"]
        for d in odd[:40] + inf[:10]:
            print(f"  {d['rcpt']} ({d['via']}) x{len(d['times'])} sink #{','.join(map(str, d['ns']))}: {d['why']}")
        if len(odd) > 40 or len(inf) > 10:
            print(f"  ... {max(0, len(odd) - 40)} more made twice or unexplained, {max(0, len(inf) - 10)} more "
                  f"in flight (all in {work}/duplicates.txt)")
        with open(os.path.join(work, "duplicates.txt"), "w") as f:
            for d in odd + inf:
                f.write(f"{d['rcpt']} ({d['via']}) x{len(d['times'])} sink #{','.join(map(str, d['ns']))} "
                        f"[{d['cls']}]: {d['why']}\n")
        bcls = {c: sum(1 for b in res["both_info"] if b["cls"] == c)
                for c in ("inflight", "remade", "unclear", "unexplained")}
        if res["both_info"]:
            print(f"bounced + delivered : {len(res['both_info'])} pairs got a DSN and were delivered as well: "
                  f"{bcls['inflight']} in flight at a kill, {bcls['remade']} made again after the failure, "
                  f"{bcls['unclear']} made again in the second of the failure or in flight, "
                  f"{bcls['unexplained']} unexplained")
            for b in sorted(res["both_info"], key=lambda b: (b["cls"] == "inflight", b["cls"]))[:20]:
                print(f"  {b['rcpt']} ({b['via']}) [{b['cls']}]: {b['why']}")
        infl = res["inflight"]
        print(f"in-flight           : {len(infl)} transactions without a reply "
              f"({sum(1 for r in infl if r['via'] != 'http')} SMTP, {sum(1 for r in infl if r['via'] == 'http')} HTTP; "
              f"{len(res['inflight_rcpts'])} recipients, {res['inflight_delivered']} of them delivered anyway)")
        print(f"refused             : {len(res['refused'])} replies other than 250/202 (journal kind \"refused\")")
        print(f"unacknowledged mail : {len(res['unexpected'])} delivered pairs neither acknowledged nor in flight")
        print(f"wrong message       : {len(res['mismatched'])} pairs delivered with another Message-ID than acknowledged")
        crossed_exp = sum(1 for k in kills for v in (k.get("stats") or {}).values()
                          if v and v.get("status") == "sending" and (v.get("expanded") or 0) < (v.get("total") or 0))
        crossed_del = sum(1 for k in kills if any(v and v.get("status") == "sending" for v in (k.get("stats") or {}).values()))
        print(f"campaigns           : killed {crossed_exp} times during an expansion, {crossed_del} times while "
              f"a campaign was sending; final stats "
              + "; ".join(f"{cid}: {v}" for cid, v in (final_stats or {}).items()))
        defects = []
        if drained:
            print(f"drain               : complete (queue empty, every campaign sent)")
        elif stuck:
            print(f"drain               : queue empty after {t_drained - t_drain - STUCK_GRACE:.0f} s, but the campaigns' "
                  f"stats did not reach sent (unchanged for {STUCK_GRACE} s)")
        else:
            print(f"drain               : NOT complete after {args.drain_timeout:.0f} s: "
                  f"{len(queue_left) if queue_left is not None else '?'} messages still queued")
            if not stuck:
                defects.append("not drained")
        for cid, v in (final_stats or {}).items():
            if not v or v.get("status") != "sent":
                rows, err = stuck_campaign_recipients(args.database_url, cid)
                queued_ids = {r["id"] for r in (queue_left or [])}
                lines = [f"campaign {cid}: stats {v}"]
                if rows is None:
                    lines.append(f"  psql: {err}")
                else:
                    got = sum(1 for r in rows if r[0].lower() in res["deliveries"])
                    inq = sum(1 for r in rows if r[2] in queued_ids)
                    lines.append(f"  {len(rows)} recipients not final in campaign_recipients; {got} of them delivered "
                                 f"to the sink, {inq} still in the spool")
                    for em, state, qid, upd in rows:
                        ds = res["deliveries"].get(em.lower(), [])
                        dl = [f"{e.get('result')}@{e.get('time')}" for e in res["dlog"].get(em.lower(), [])]
                        lines.append(f"  {em} row {state} (queue id {qid or '-'}, updated {upd}); sink deliveries "
                                     f"{len(ds)}; delivery.jsonl {dl}")
                with open(os.path.join(work, f"campaign-{cid}-not-sent.txt"), "w") as f:
                    f.write("\n".join(lines) + "\n")
                print(f"campaign not sent   : " + "\n  ".join(lines[:12])
                      + (f"\n  ... all in {work}/campaign-{cid}-not-sent.txt" if len(lines) > 12 else ""))
                defects.append(f"campaign {cid} not sent")
        if cls["remade"] or bcls["remade"]:
            defects.append(f"{cls['remade'] + bcls['remade']} pairs whose message was made twice "
                           f"({cls['remade']} delivered twice, {bcls['remade']} bounced and delivered)")
        if bcls["unexplained"]:
            defects.append(f"{bcls['unexplained']} unexplained bounced-and-delivered pairs")
        if cls["unexplained"]:
            defects.append(f"{cls['unexplained']} unexplained duplicates")
        if res["unexpected"]:
            defects.append(f"{len(res['unexpected'])} deliveries never acknowledged")
        if res["mismatched"]:
            defects.append(f"{len(res['mismatched'])} deliveries with another Message-ID")
        print(f"other defects       : {'; '.join(defects) if defects else 'none'}")
        if res["missing"]:
            lines = investigate_missing(work, res, os.path.join(work, "missing.txt"))
            print("missing pairs (first 30 lines; all in missing.txt):")
            for l in lines[:30]:
                print("  " + l)
        keep = os.environ.get("CRASH_LOOP_KEEP") == "1"
        ok = not res["missing"]
        print(f"logs                : {work}/log (herald.log, delivery.jsonl, herald.out), journal {journal_path}, "
              f"sink {work}/sink" + ("" if keep or not ok else " (removed at exit: run with --keep to look into them)"))
        if ok:
            print(f"verdict             : PASS: no acknowledged message lost over {len(kills)} SIGKILLs "
                  f"({len(acked)} pairs acknowledged, {len(res['delivered'])} delivered, {len(res['bounced'])} bounced)")
            exit_code = 0
        else:
            print(f"verdict             : FAIL: {len(res['missing'])} acknowledged pairs lost over {len(kills)} SIGKILLs")
            exit_code = 1
    finally:
        stop_traffic.set()
        stop_all.set()
        if herald.proc is not None and herald.proc.poll() is None:
            herald.terminate(30)
        if sink.poll() is None:
            sink.send_signal(signal.SIGINT)
            try:
                sink.wait(10)
            except subprocess.TimeoutExpired:
                sink.kill()
    sys.stdout.flush()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
