"""STARTTLS command injection (CVE-2011-0411 class) against Herald.

  starttls_injection.py --port P --scenario pipelined-rset
      Sends "STARTTLS\\r\\nRSET\\r\\n" in one packet. Herald must answer only the
      STARTTLS (220) in plaintext, complete the handshake, and never answer the RSET:
      the first reply over TLS must be the one to our new EHLO. Then a message is sent
      over TLS to show the session is healthy.
  starttls_injection.py --port P --scenario plaintext-during-handshake
      After the 220, sends a plaintext command instead of a TLS ClientHello. Herald
      must not execute it (no SMTP reply) and must close the connection.

  starttls_injection.py --port P --scenario auth-before-starttls
      On a listener that allows plaintext AUTH: AUTH succeeds in clear, then STARTTLS.
      RFC 3207 §4.2: everything learnt before TLS is forgotten, the AUTH identity
      included, so a recipient after the handshake needs AUTH again.

Prints a JSON report; assertions are made by the Swift test.
"""

import argparse
import ssl
import time

from smtptest import RawSMTP, Closed, dot_stuff, emit, unverified_context

MESSAGE = (b"From: <inject@client.test>\r\nTo: <rcpt@example.com>\r\n"
           b"Subject: after STARTTLS\r\nMessage-ID: <starttls-injection@client.test>\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nbody over TLS\r\n")


def pipelined_rset(port):
    r = {"scenario": "pipelined-rset"}
    c = RawSMTP(port)
    r["greeting"] = c.read_reply()
    r["ehlo"] = c.cmd("EHLO client.test")
    c.send(b"STARTTLS\r\nRSET\r\n")  # one write, one packet on loopback (TCP_NODELAY)
    r["starttls"] = c.read_reply()
    # Anything else in plaintext before we start the handshake would be the RSET's answer.
    time.sleep(0.2)
    extra, closed = c.pending(0.2)
    r["plaintext_after_220"] = extra.decode("latin-1")
    r["closed_before_handshake"] = closed
    if closed or r["starttls"][0] != 220:
        emit(r)
        return
    c.starttls()
    r["tls_version"] = c.sock.version()
    c.send(b"EHLO client.test\r\n")
    r["first_reply_over_tls"] = c.read_reply()
    # Nothing more may be waiting: an answer to the injected RSET would show up here.
    extra, closed = c.pending(0.3)
    r["extra_after_ehlo"] = extra.decode("latin-1")
    r["mail"] = c.cmd("MAIL FROM:<inject@client.test>")
    r["rcpt"] = c.cmd("RCPT TO:<rcpt@example.com>")
    r["data"] = c.cmd("DATA")
    c.send(dot_stuff(MESSAGE))
    r["end_of_data"] = c.read_reply()
    r["quit"] = c.cmd("QUIT")
    c.close()
    emit(r)


def plaintext_during_handshake(port):
    r = {"scenario": "plaintext-during-handshake"}
    c = RawSMTP(port)
    r["greeting"] = c.read_reply()
    r["ehlo"] = c.cmd("EHLO client.test")
    r["starttls"] = c.cmd("STARTTLS")
    c.send(b"MAIL FROM:<plaintext@client.test>\r\nRCPT TO:<rcpt@example.com>\r\n")
    data, closed = c.pending(3.0)
    r["received"] = data.decode("latin-1")
    r["closed"] = closed
    c.close()
    emit(r)


def auth_before_starttls(port):
    import base64
    r = {"scenario": "auth-before-starttls"}
    c = RawSMTP(port)
    r["greeting"] = c.read_reply()
    r["ehlo"] = c.cmd("EHLO client.test")
    r["auth_plaintext"] = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0app\0secret").decode())
    r["starttls"] = c.cmd("STARTTLS")
    c.starttls()
    r["ehlo_tls"] = c.cmd("EHLO client.test")
    r["mail"] = c.cmd("MAIL FROM:<app@client.test>")
    r["rcpt_before_auth"] = c.cmd("RCPT TO:<rcpt@example.com>")
    r["rset"] = c.cmd("RSET")
    r["auth_tls"] = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0app\0secret").decode())
    r["mail2"] = c.cmd("MAIL FROM:<app@client.test>")
    r["rcpt_after_auth"] = c.cmd("RCPT TO:<rcpt@example.com>")
    r["quit"] = c.cmd("QUIT")
    c.close()
    emit(r)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--scenario", required=True, choices=["pipelined-rset", "plaintext-during-handshake", "auth-before-starttls"])
    a = p.parse_args()
    if a.scenario == "pipelined-rset":
        pipelined_rset(a.port)
    elif a.scenario == "auth-before-starttls":
        auth_before_starttls(a.port)
    else:
        plaintext_during_handshake(a.port)


if __name__ == "__main__":
    main()
