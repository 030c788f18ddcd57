#!/usr/bin/env python3
"""Drives the console's postmaster view (/ui/#/postmaster) in headless Chromium (Debian's
/usr/bin/chromium through Playwright) and prints what it saw as one JSON document on its
last line, for ConsolePostmasterEndToEndTests to check.

Usage: console_postmaster.py CONFIG_JSON
CONFIG_JSON: {"base": "http://127.0.0.1:PORT", "admin_key": ..., "tenant_key": ...,
              "screenshots": dir, "keep": queue id, "drop": queue id}

The walk: the admin key signs in and lands on the postmaster view (destinations, held
messages, delivery log); "keep" is released and "drop" deleted, each after a
confirmation; at phone width nothing overflows; the admin key on a tenant page is told
so; then a tenant's key signs in, sees no postmaster link, and the postmaster page shows
the API's 403 without signing it out.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

from console_walk import Walk, wait_for

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")

cfg = json.loads(sys.argv[1])
base = cfg["base"]
shots = cfg["screenshots"]
out = {"screenshots": [], "page_errors": [], "steps": []}
walk = Walk(out, shots)
step, shot = walk.step, walk.shot


def nav_links(page):
    return page.evaluate("() => [...document.querySelectorAll('#nav a')].filter(a => !a.hidden).map(a => a.textContent)")


def held_ids(page):
    return page.evaluate("() => [...document.querySelectorAll('#held tbody tr[data-held]')].map(tr => tr.dataset.held)")


def sign_in(page, key):
    page.fill("#api-key", key)
    page.click("#signin button[type=submit]")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                args=["--no-sandbox", "--disable-dev-shm-usage"])
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC",
                                  reduced_motion="reduce")
    context.add_init_script("""
        window.__csp = [];
        document.addEventListener('securitypolicyviolation',
            e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || '')));
    """)
    page = context.new_page()
    page.set_default_timeout(20000)
    page.on("pageerror", lambda e: out["page_errors"].append(str(e)))
    dialogs = []

    def on_dialog(d):
        dialogs.append(d.message)
        d.accept()
    page.on("dialog", on_dialog)

    step("sign in as admin")
    page.goto(base + "/ui/")
    page.wait_for_selector("#api-key")
    sign_in(page, cfg["admin_key"])
    page.wait_for_selector("#destinations")
    out["landing_hash"] = page.evaluate("() => location.hash")
    out["nav_links"] = nav_links(page)
    out["role"] = page.evaluate("() => sessionStorage.getItem('herald.role')")

    step("postmaster view")
    wait_for(lambda: page.locator("#destinations tbody tr[data-destination]").count() > 0, 15, "destinations")
    wait_for(lambda: len(held_ids(page)) == 2, 15, "two held messages")
    wait_for(lambda: page.locator("#delivery-log tbody tr .badge").count() > 0, 15, "log lines")
    out["destinations"] = page.evaluate("""() => [...document.querySelectorAll('#destinations tbody tr[data-destination]')]
        .map(tr => [...tr.children].map(td => td.textContent))""")
    out["held_ids"] = held_ids(page)
    out["held_total"] = page.text_content("#held-total")
    out["log_results"] = page.evaluate(
        "() => [...document.querySelectorAll('#delivery-log tbody .badge')].map(b => b.textContent)")
    shot(page, "postmaster")

    step("release")
    page.locator("#held tbody tr[data-held='%s'] [data-held-action=release]" % cfg["keep"]).click()
    wait_for(lambda: "released" in (page.text_content("#postmaster-notice") or ""), 15, "the release")
    out["release_notice"] = page.text_content("#postmaster-notice")
    step("delete")
    page.locator("#held tbody tr[data-held='%s'] [data-held-action=delete]" % cfg["drop"]).click()
    wait_for(lambda: "deleted" in (page.text_content("#postmaster-notice") or ""), 15, "the deletion")
    out["delete_notice"] = page.text_content("#postmaster-notice")
    wait_for(lambda: len(held_ids(page)) == 0, 15, "an empty hold")
    out["held_after"] = held_ids(page)
    shot(page, "postmaster-after")

    step("phone width")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_selector("#destinations tbody tr")
    out["phone_overflow"] = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    shot(page, "postmaster-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    step("admin key on a tenant page")
    page.goto(base + "/ui/#/campaigns")
    wait_for(lambda: page.text_content("h1") not in ("", "Postmaster"), 10, "the tenant page's heading")
    out["admin_on_campaigns"] = page.text_content("h1")

    step("tenant key")
    page.click("#signout")
    page.wait_for_selector("#api-key")
    sign_in(page, cfg["tenant_key"])
    page.wait_for_selector("#campaigns")
    out["tenant_nav_links"] = nav_links(page)
    page.goto(base + "/ui/#/postmaster")
    box = page.locator("#error")
    box.wait_for(state="visible", timeout=10000)
    out["tenant_postmaster_error"] = box.locator("p").text_content()
    out["tenant_destination_rows"] = page.locator("#destinations tbody tr[data-destination]").count()
    out["tenant_still_signed_in"] = page.evaluate("() => sessionStorage.getItem('herald.apiKey') !== null")

    out["csp_violations"] = page.evaluate("() => window.__csp")
    out["dialogs"] = dialogs
    browser.close()

print(json.dumps(out))
