"""What the console's browser walks (console_browser.py, console_postmaster.py) share:
named steps, screenshots and polling, all recorded in the walk's JSON output."""
import os
import sys
import time


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
