"""What the console's browser walks (console_browser.py, console_postmaster.py) share:
named steps, screenshots and polling, all recorded in the walk's JSON output."""
import email
import email.policy
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class Walk:
    def __init__(self, out, shots):
        self.out = out
        self.shots = shots
        os.makedirs(shots, exist_ok=True)
        out.setdefault("screenshots", [])
        out.setdefault("steps", [])

    def step(self, name):
        self.out["steps"].append(name)
        print("step:", name, file=sys.stderr, flush=True)

    def shot(self, page, name):
        path = os.path.join(self.shots, name + ".png")
        page.screenshot(path=path, full_page=True)
        self.out["screenshots"].append(path)


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch_loopback(url):
    """GETs a URL on 127.0.0.1 once, a redirect not followed: {"status", "location"}."""
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise AssertionError("not a loopback URL: " + url)
    try:
        with _opener.open(url, timeout=20) as r:
            r.read()
            return {"status": r.status, "location": r.headers.get("Location")}
    except urllib.error.HTTPError as e:
        e.read()
        return {"status": e.code, "location": e.headers.get("Location")}


def tracking_urls(eml_path):
    """A delivered message's open image and tracked links (…/t/o/…, …/t/c/…) from its HTML part."""
    with open(eml_path, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    body = message.get_body(("html",))
    html = body.get_content() if body else ""
    return {"to": str(message["To"]),
            "opens": [u for u in re.findall(r'<img src="([^"]*)"', html) if "/t/o/" in u],
            "links": [u for u in re.findall(r'href="([^"]*)"', html) if "/t/c/" in u]}
