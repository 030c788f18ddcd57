#!/usr/bin/env python3
"""A scripted remote MX for Herald's delivery tests and benchmarks (aiosmtpd).

Listens on 127.0.0.1 only. Every accepted message is written to --out as
<n>.eml (raw bytes as received, n zero-padded to 7 digits) plus one JSON line in
--out/index.jsonl (n, time, mail_from, rcpts, size, message_id, tls). Numbers go on
across restarts: a sink started on a folder that holds messages already continues
after the highest number found there (file names and index.jsonl), so it never
overwrites what an earlier run received, and index.jsonl is only appended to.
The recipient's local part steers the behaviour:

  tempfail@…            450 4.2.1 at RCPT
  permfail@…            550 5.1.1 at RCPT
  datafail@…            554 5.6.0 after DATA
  datatemp@…            451 4.3.0 after DATA
  throttle@…            421 4.7.0 at RCPT (rate limited) and close
  disconnect-in-data@…  the connection is dropped in the middle of DATA
  slow@…                every reply delayed by --slow seconds
  failonce-<tag>@…      450 the first time this exact address is seen, then accepted
  policyonce-<tag>@…    550 5.7.1 (a permanent policy refusal) the first time, then accepted
  dropdataonce-<tag>@…  the connection is dropped in the middle of DATA the first time this
                        exact address is seen in a DATA, then accepted (every recipient of
                        that transaction is deferred by the client, so it retries them all)
anything else is accepted. --no-starttls disables STARTTLS; --cert/--key enable it.
--auth-log FILE offers AUTH PLAIN/LOGIN (after STARTTLS only), accepts any credentials
and appends "user password" to FILE for each, so a test can tell whether a password
was sent.
"""
import argparse, asyncio, json, os, ssl, sys, time, threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def highest_number(out):
    """The highest message number an earlier run left in `out` (0 when none)."""
    high = 0
    for name in os.listdir(out):
        stem, dot, ext = name.partition(".")
        if ext == "eml" and stem.isdigit():
            high = max(high, int(stem))
    try:
        with open(os.path.join(out, "index.jsonl"), "rb") as f:
            for line in f:
                try:
                    high = max(high, int(json.loads(line).get("n", 0)))
                except (ValueError, AttributeError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return high


class Handler:
    def __init__(self, out, slow):
        self.out = out
        self.slow = slow
        self.seen_once = set()
        self.lock = threading.Lock()
        os.makedirs(out, exist_ok=True)
        self.count = highest_number(out)
        self.index = open(os.path.join(out, "index.jsonl"), "a", buffering=1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("slow"):
            await asyncio.sleep(self.slow)
        if local == "tempfail":
            return "450 4.2.1 mailbox temporarily unavailable"
        if local == "permfail":
            return "550 5.1.1 no such user here"
        if local == "throttle":
            session.close_after = True
            return "421 4.7.0 rate limit exceeded, try again later"
        if local.startswith("failonce-"):
            with self.lock:
                if address not in self.seen_once:
                    self.seen_once.add(address)
                    return "450 4.2.0 try again (first attempt)"
        if local.startswith("policyonce-"):
            with self.lock:
                if address not in self.seen_once:
                    self.seen_once.add(address)
                    return "550 5.7.1 refused by policy (first attempt)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        locals_ = [a.split("@")[0].lower() for a in envelope.rcpt_tos]
        if "datafail" in locals_:
            return "554 5.6.0 content rejected"
        if "datatemp" in locals_:
            return "451 4.3.0 temporary content failure"
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        with self.lock:
            self.count += 1
            n = self.count
            # "x": never replace a file, even one another sink on this folder wrote.
            while True:
                try:
                    f = open(os.path.join(self.out, f"{n:07d}.eml"), "xb")
                    break
                except FileExistsError:
                    self.count += 1
                    n = self.count
        with f:
            f.write(data)
        mid = ""
        for line in data.split(b"\r\n"):
            if not line:
                break
            if line.lower().startswith(b"message-id:"):
                mid = line.split(b":", 1)[1].strip().decode("ascii", "replace")
        self.index.write(json.dumps({
            "n": n, "time": time.time(), "mail_from": envelope.mail_from, "rcpts": envelope.rcpt_tos,
            "size": len(data), "message_id": mid, "tls": session.ssl is not None,
        }) + "\n")
        return "250 2.0.0 OK queued as %d" % n


class ScriptedSMTP(SMTP):
    def _drop_data_once(self):
        """True the first time a transaction has a dropdataonce-<tag>@ recipient not seen
        before (all of them are then marked seen, so the retry is accepted)."""
        handler = self.event_handler
        fresh = [a for a in self.envelope.rcpt_tos
                 if a.split("@")[0].lower().startswith("dropdataonce-")]
        if not fresh:
            return False
        with handler.lock:
            fresh = [a for a in fresh if a not in handler.seen_once]
            handler.seen_once.update(fresh)
        return bool(fresh)

    async def smtp_DATA(self, arg):
        if (any(a.split("@")[0].lower() == "disconnect-in-data" for a in self.envelope.rcpt_tos)
                or self._drop_data_once()):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.read(10)
            self.transport.close()
            return
        return await super().smtp_DATA(arg)

    async def smtp_RCPT(self, arg):
        await super().smtp_RCPT(arg)
        if getattr(self.session, "close_after", False):
            self.transport.close()


class ScriptedController(Controller):
    def __init__(self, handler, tls_context, auth_log=None, **kw):
        self.tls_context = tls_context
        self.auth_log = auth_log
        super().__init__(handler, **kw)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult
        with open(self.auth_log, "a") as f:
            f.write("%s %s\n" % (auth_data.login.decode(errors="replace"), auth_data.password.decode(errors="replace")))
        return AuthResult(success=True)

    def factory(self):
        extra = {}
        if self.auth_log:
            extra = dict(authenticator=self.authenticate, auth_require_tls=True)
        return ScriptedSMTP(self.handler, tls_context=self.tls_context, require_starttls=False,
                            enable_SMTPUTF8=True, decode_data=False, data_size_limit=50_000_000,
                            ident="sink.test ESMTP", **extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--slow", type=float, default=2.0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth-log")
    args = ap.parse_args()
    ctx = None
    if args.cert and args.key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    handler = Handler(args.out, args.slow)
    port = args.port
    if port == 0:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    ctl = ScriptedController(handler, ctx, auth_log=args.auth_log, hostname="127.0.0.1", port=port)
    ctl.start()
    print(f"listening 127.0.0.1:{port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ctl.stop()


if __name__ == "__main__":
    main()
