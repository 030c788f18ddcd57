"""Load generator for Herald's durability test.

  durability_load.py --port P --threads 16 --round R --journal FILE [--max-seconds S]

Each thread submits unique messages in a loop (a few per connection, then QUIT and
reconnect) until the server goes away (connection refused) or time runs out. Every
step that matters for durability is appended to the journal and flushed before the
next network action, one tab-separated line each:

  DOT  key  sender  rcpt,rcpt…  base64(message)   written just before the write that
                                                   carries the final "." of DATA
  ACK  key  queue-id                               after "250 … queued as <id>"
  REJ  key  code text                              after any other reply to the dot
  ERR  thread  text                                connection errors (informative)

So: a key with ACK must be in the spool intact; a key without DOT must not be; a key
with DOT but neither ACK nor REJ had its reply lost in flight and may be either.
"""

import argparse
import base64
import random
import socket
import sys
import threading
import time

from smtptest import RawSMTP, Closed, dot_stuff, emit

WORDS = ("mail queue spool fsync herald durable commit rename envelope sender recipient "
         "delivery journal crash recover message acknowledge byte exact").split()


class Journal:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, *fields):
        line = "\t".join(str(x) for x in fields) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


def make_message(key, sender, rcpts, rng):
    with_id = rng.random() < 0.8
    h = ["From: <%s>" % sender, "To: %s" % ", ".join("<%s>" % r for r in rcpts),
         "Subject: durability %s" % key, "X-Durability-Key: %s" % key]
    if with_id:
        h.append("Message-ID: <%s@load.test>" % key)
        h.append("Date: Mon, 23 Nov 2026 10:00:00 +0000")
    body = []
    size = rng.randint(200, 6000)
    total = 0
    while total < size:
        n = rng.randint(0, 20)
        line = " ".join(rng.choice(WORDS) for _ in range(n))
        if rng.random() < 0.08:
            line = "." + line          # must be dot-stuffed on the wire, unstuffed in the spool
        if rng.random() < 0.03:
            line = ""                  # empty lines too
        body.append(line)
        total += len(line) + 2
    body.append("end of %s %08x" % (key, rng.getrandbits(32)))
    return ("\r\n".join(h) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode("ascii")


def worker(index, args, journal, stop, stats):
    rng = random.Random("%s-%d-%f" % (args.round, index, time.time()))
    n = 0
    while not stop.is_set():
        try:
            c = RawSMTP(args.port, timeout=10)
        except (ConnectionRefusedError, OSError) as e:
            journal.write("ERR", index, "connect: %s" % e)
            return  # the server is gone (killed): this round is over for this thread
        try:
            code, _ = c.read_reply()
            if code != 220:
                journal.write("ERR", index, "greeting %d" % code)
                c.close()
                time.sleep(0.05)
                continue
            c.cmd("EHLO load%d.test" % index)
            for _ in range(rng.randint(1, 4)):
                if stop.is_set():
                    break
                n += 1
                key = "r%st%02dn%05d" % (args.round, index, n)
                sender = "t%d-%s@load.test" % (index, key)
                rcpts = ["u%d-%s@dest%d.example" % (i, key, n % 5) for i in range(rng.randint(1, 3))]
                message = make_message(key, sender, rcpts, rng)
                code, text = c.cmd("MAIL FROM:<%s>" % sender)
                if code != 250:
                    journal.write("ERR", index, "MAIL %d %s" % (code, text))
                    break
                ok = True
                for r in rcpts:
                    code, text = c.cmd("RCPT TO:<%s>" % r)
                    if code != 250:
                        journal.write("ERR", index, "RCPT %d %s" % (code, text))
                        ok = False
                if not ok:
                    c.cmd("RSET")
                    continue
                code, text = c.cmd("DATA")
                if code != 354:
                    journal.write("ERR", index, "DATA %d %s" % (code, text))
                    break
                wire = dot_stuff(message)
                cut = rng.randint(0, len(wire) - 3)
                c.send(wire[:cut])       # most of the message: no dot yet, cannot be queued
                journal.write("DOT", key, sender, ",".join(rcpts), base64.b64encode(message).decode("ascii"))
                c.send(wire[cut:])       # carries the final CRLF.CRLF
                code, text = c.read_reply()
                if code == 250 and "queued as " in text[0]:
                    journal.write("ACK", key, text[0].split("queued as ", 1)[1].split()[0])
                    stats["ack"] += 1
                else:
                    journal.write("REJ", key, code, " ".join(text))
                    stats["rej"] += 1
            c.cmd("QUIT")
        except (Closed, ConnectionError, socket.timeout, OSError) as e:
            journal.write("ERR", index, "session: %s" % e)
            stats["errors"] += 1
        finally:
            c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--round", default="0")
    p.add_argument("--journal", required=True)
    p.add_argument("--max-seconds", type=float, default=20)
    a = p.parse_args()
    journal = Journal(a.journal)
    journal.write("START", a.round, time.time())
    stop = threading.Event()
    stats = {"ack": 0, "rej": 0, "errors": 0}
    threads = [threading.Thread(target=worker, args=(i, a, journal, stop, stats), daemon=True)
               for i in range(a.threads)]
    for t in threads:
        t.start()
    deadline = time.time() + a.max_seconds
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    stop.set()
    for t in threads:
        t.join(15)
    emit(stats)


if __name__ == "__main__":
    main()
