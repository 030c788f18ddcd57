"""Submits one message to Herald with Python's smtplib and prints what happened as JSON.

  smtplib_submit.py --port P [--starttls] [--auth PLAIN|LOGIN|LOGIN-NO-IR]
                    [--user U --password PW] --sender S --rcpt R [--rcpt R…]
                    --message FILE [--smtputf8]

Every step's reply goes into the JSON (the Swift test asserts on it); an SMTP error
stops the conversation and is reported, never raised.
"""

import argparse
import smtplib
import ssl
import sys

from smtptest import emit, unverified_context


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--auth", choices=["PLAIN", "LOGIN", "LOGIN-NO-IR"])
    p.add_argument("--user", default="app")
    p.add_argument("--password", default="secret")
    p.add_argument("--sender", required=True)
    p.add_argument("--rcpt", action="append", required=True)
    p.add_argument("--message", required=True)
    p.add_argument("--smtputf8", action="store_true")
    a = p.parse_args()
    with open(a.message, "rb") as f:
        message = f.read()

    out = {"steps": []}

    def step(name, reply):
        code, text = reply
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        out["steps"].append({"step": name, "code": code, "text": text})
        return code

    s = smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test", timeout=15)
    try:
        step("ehlo", s.ehlo())
        out["features_plain"] = sorted(s.esmtp_features.keys())
        if a.starttls:
            step("starttls", s.starttls(context=unverified_context()))
            out["cipher"] = s.sock.cipher()[0] if isinstance(s.sock, ssl.SSLSocket) else None
            step("ehlo-tls", s.ehlo())
            out["features_tls"] = sorted(s.esmtp_features.keys())
        if a.auth:
            s.user, s.password = a.user, a.password
            try:
                if a.auth == "PLAIN":
                    r = s.auth("PLAIN", s.auth_plain)
                elif a.auth == "LOGIN":
                    r = s.auth("LOGIN", s.auth_login)  # initial response: AUTH LOGIN <user>
                else:
                    r = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
                step("auth", r)
            except smtplib.SMTPAuthenticationError as e:
                step("auth", (e.smtp_code, e.smtp_error))
                emit(out)
                return
        options = ["SMTPUTF8"] if a.smtputf8 else []
        if step("mail", s.mail(a.sender, options)) != 250:
            emit(out)
            return
        accepted = 0
        for r in a.rcpt:
            if step("rcpt", s.rcpt(r)) == 250:
                accepted += 1
        if accepted == 0:
            emit(out)
            return
        step("data", s.data(message))
        step("quit", s.quit())
    except smtplib.SMTPServerDisconnected as e:
        out["error"] = "disconnected: %s" % e
    except smtplib.SMTPResponseException as e:
        step("error", (e.smtp_code, e.smtp_error))
    emit(out)


if __name__ == "__main__":
    main()
