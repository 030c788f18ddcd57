// Herald console: a small single-page client of Herald's public /v1 API.
//
// Security (see the README, "Web console"):
// - The API key is kept in sessionStorage only (this tab, until it closes or the user
//   signs out); it is never put in a URL or a cookie. Every request carries it as
//   `Authorization: Bearer`, which a cross-site page cannot make a browser send, so
//   there is no ambient credential for a forged request to ride on (no CSRF token needed).
// - Every piece of data is written as text (textContent, text nodes), never parsed as markup:
//   subscriber names, subjects and list names are attacker-controlled.
// - The page is served with `default-src 'self'` and no inline script or style; widths
//   are set through the CSSOM (element.style), which that policy allows.
(function () {
  "use strict";

  const KEY = "herald.apiKey";
  // "tenant" or "admin": which API the key opens (found at sign-in; not a secret).
  const ROLE = "herald.role";
  const main = document.getElementById("main");
  const errorBox = document.getElementById("error");
  const nav = document.getElementById("nav");
  const STATUSES = ["draft", "scheduled", "sending", "paused", "sent", "cancelled", "expired",
    "active", "unsubscribed", "bounced", "complained", "failed",
    "delivered", "deferred", "held", "released", "deleted"];
  const FINAL = ["sent", "cancelled", "expired"];
  let timers = [];
  let viewNumber = 0;

  // ---- DOM helpers: text only -------------------------------------------------------

  // el("a", {href: "#/x", class: "c"}, "text", childNode, ...): children that are not
  // nodes become text nodes; attribute values are set with setAttribute (never parsed as
  // markup). Only the console's own constants and numeric ids go into href.
  function el(tag, attrs) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const name of Object.keys(attrs)) {
        const value = attrs[name];
        if (value === undefined || value === null || value === false) continue;
        if (name.startsWith("on")) e.addEventListener(name.slice(2), value);
        else if (value === true) e.setAttribute(name, "");
        else e.setAttribute(name, String(value));
      }
    }
    for (let i = 2; i < arguments.length; i++) append(e, arguments[i]);
    return e;
  }

  function append(parent, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(parent, c); }); return; }
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function badge(status) {
    const known = STATUSES.indexOf(status) >= 0;
    return el("span", { class: known ? "badge badge-" + status : "badge", "data-status": known ? status : null },
      status === undefined || status === null ? "?" : String(status));
  }

  function table(headers, rows, attrs) {
    return el("div", { class: "table-wrap" },
      el("table", attrs,
        el("thead", null, el("tr", null, headers.map(function (h) {
          return el("th", { scope: "col", class: h.class }, h.label);
        }))),
        rows instanceof HTMLElement && rows.tagName === "TBODY" ? rows : el("tbody", null, rows)));
  }

  function fmtTime(text) {
    if (!text) return "—";
    const d = new Date(text);
    return isNaN(d.getTime()) ? String(text) : d.toLocaleString();
  }

  // A time as the wall clock shows it in an IANA zone (the one a schedule was given in), with the zone named.
  function fmtZoned(text, zone) {
    if (!text) return "—";
    const d = new Date(text);
    if (isNaN(d.getTime())) return String(text);
    try {
      return d.toLocaleString([], { timeZone: zone, dateStyle: "medium", timeStyle: "short" }) + " (" + zone + ")";
    } catch (_) {
      return d.toLocaleString();
    }
  }

  function fmtNumber(n) {
    return typeof n === "number" ? n.toLocaleString() : "—";
  }

  // An SVG element (attributes set as text, like el()'s); its text goes in as a text node.
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const name of Object.keys(attrs || {})) e.setAttribute(name, String(attrs[name]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function fmtDuration(ms) {
    const minutes = Math.round(ms / 60000);
    if (minutes < 1) return "under a minute";
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + (minutes % 60) + " min";
    return Math.round(hours / 24) + " days";
  }

  function setTitle(text) {
    document.title = text + " · Herald console";
  }

  function heading(text) {
    const h = el("h1", { tabindex: "-1" }, text);
    return h;
  }

  function show() {
    main.replaceChildren.apply(main, arguments);
    const h = main.querySelector("h1");
    if (h) h.focus();
  }

  // ---- errors ------------------------------------------------------------------------

  function showError(message) {
    errorBox.replaceChildren(
      el("p", null, String(message)),
      el("button", { type: "button", onclick: clearError }, "Dismiss"));
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
  }

  window.addEventListener("error", function (event) {
    showError("Console error: " + (event.message || "unknown"));
  });
  window.addEventListener("unhandledrejection", function (event) {
    const r = event.reason;
    showError(r && r.message ? r.message : "Console error: " + String(r));
  });

  // ---- the API -----------------------------------------------------------------------

  function APIError(status, message) {
    const e = new Error(message);
    e.status = status;
    return e;
  }

  // A response → its JSON, or an error carrying the problem document's detail.
  function handle(status, text) {
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (status >= 200 && status < 300) return data;
    let message = "HTTP " + status;
    if (data && typeof data === "object") {
      message = String(data.detail || data.title || message);
      if (Array.isArray(data.errors) && data.errors.length) message += " " + data.errors.join("; ");
    }
    if (status === 401) {
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(ROLE);
      message += " Sign in again.";
    }
    throw APIError(status, message);
  }

  function authorization() {
    const key = sessionStorage.getItem(KEY);
    if (!key) throw APIError(401, "Sign in with an API key first.");
    return "Bearer " + key;
  }

  async function api(method, path, body) {
    const headers = { "Authorization": authorization(), "Accept": "application/json" };
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, {
        method: method, headers: headers, body: payload,
        credentials: "omit", cache: "no-store", redirect: "error", referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw APIError(0, "Herald did not answer (" + e.message + ").");
    }
    const result = handle(response.status, await response.text());
    return result;
  }

  // The CSV upload goes through XMLHttpRequest for its upload progress events.
  function upload(path, file, onProgress) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      xhr.withCredentials = false;
      xhr.setRequestHeader("Authorization", authorization());
      xhr.setRequestHeader("Content-Type", "text/csv");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", function () {
        try { resolve(handle(xhr.status, xhr.responseText)); } catch (e) { reject(e); }
      });
      xhr.addEventListener("error", function () { reject(APIError(0, "The upload failed: Herald did not answer.")); });
      xhr.send(file);
    });
  }

  // ---- routing -----------------------------------------------------------------------

  function go(hash) {
    if (location.hash === hash) route(); else location.hash = hash;
  }

  function stopTimers() {
    timers.forEach(function (t) { clearInterval(t); });
    timers = [];
  }

  async function route() {
    stopTimers();
    const number = ++viewNumber;
    const alive = function () { return number === viewNumber; };
    const signedIn = !!sessionStorage.getItem(KEY);
    const role = sessionStorage.getItem(ROLE) === "admin" ? "admin" : "tenant";
    nav.hidden = !signedIn;
    nav.querySelectorAll("[data-role]").forEach(function (a) { a.hidden = a.getAttribute("data-role") !== role; });
    const path = (location.hash || "").replace(/^#\/?/, "");
    const parts = path.split("/");
    try {
      if (!signedIn) return signInView();
      if (path === "postmaster" || (role === "admin" && path === "")) return await postmasterView(alive);
      if (role === "admin") {
        // An admin key is no tenant's key: the tenant pages would only answer 401.
        setTitle("Tenant pages");
        return show(heading("Not for an admin key"), el("p", null,
          "This key opens the postmaster view only; campaigns and lists need a tenant's API key. ",
          el("a", { href: "#/postmaster" }, "Postmaster")));
      }
      if (path === "" || path === "campaigns") return await campaignsView(alive);
      if (path === "campaigns/new") return await newCampaignView(alive);
      if (parts[0] === "campaigns" && /^[0-9]+$/.test(parts[1] || "") && parts[2] === "edit" && parts.length === 3) {
        return await editCampaignView(parts[1], alive);
      }
      if (parts[0] === "campaigns" && /^[0-9]+$/.test(parts[1] || "") && parts.length === 2) return await campaignView(parts[1], alive);
      if (path === "lists") return await listsView(alive);
      if (parts[0] === "lists" && /^[0-9]+$/.test(parts[1] || "")) return await listView(parts[1], alive);
      if (path === "smtp-users") return await smtpUsersView(alive);
      setTitle("Not found");
      show(heading("Not found"), el("p", null, "This page does not exist. ", el("a", { href: "#/campaigns" }, "Campaigns")));
    } catch (e) {
      if (!alive()) return;
      showError(e.message);
      if (e.status === 401) { nav.hidden = true; signInView(); }
      else if (!main.querySelector("h1")) show(heading("Could not load this page"), el("p", { class: "muted" }, e.message));
    }
  }

  window.addEventListener("hashchange", function () { clearError(); route(); });
  document.getElementById("signout").addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ROLE);
    clearError();
    go("#/signin");
  });

  // ---- sign in -----------------------------------------------------------------------

  function signInView() {
    setTitle("Sign in");
    const input = el("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off",
      spellcheck: "false", required: true, "aria-describedby": "api-key-hint" });
    const form = el("form", { class: "card", id: "signin" },
      el("label", { for: "api-key" }, "API key"), input,
      el("p", { class: "hint", id: "api-key-hint" },
        "A key from herald tenant create or key-add. It is kept in this tab's session storage only " +
        "and sent as an Authorization header; closing the tab or signing out forgets it."),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Sign in")));
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      input.value = "";
      // A tenant's key opens /v1; failing that (401, or 404 without a database), an
      // admin key opens /v1/admin. The tenant API's answer is the one shown.
      let role = null;
      let refusal = null;
      try {
        await api("GET", "/v1/campaigns?limit=1");
        role = "tenant";
      } catch (e) {
        refusal = e;
      }
      if (!role && refusal.status !== 403) {
        sessionStorage.setItem(KEY, key);   // a 401 forgot it
        try {
          await api("GET", "/v1/admin/log?limit=1");
          role = "admin";
        } catch (_) {
          role = null;
        }
      }
      if (!role) {
        sessionStorage.removeItem(KEY);
        sessionStorage.removeItem(ROLE);
        showError(refusal.status === 404 ? "This Herald has no database: the console needs [database] url." : refusal.message);
        return;
      }
      sessionStorage.setItem(ROLE, role);
      clearError();
      go(role === "admin" ? "#/postmaster" : "#/campaigns");
    });
    show(heading("Sign in to the Herald console"), form);
  }

  // ---- campaigns ---------------------------------------------------------------------

  async function campaignsView(alive) {
    setTitle("Campaigns");
    const body = el("tbody");
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More campaigns");
    let next = null;
    async function load() {
      const page = await api("GET", "/v1/campaigns?limit=100" + (next ? "&after=" + encodeURIComponent(next) : ""));
      if (!alive()) return;
      (page.data || []).forEach(function (c) {
        body.append(el("tr", { "data-campaign": c.id },
          el("td", null, el("a", { href: "#/campaigns/" + Number(c.id) }, c.name || "(unnamed)")),
          el("td", { class: "optional" }, c.subject),
          el("td", null, badge(c.status)),
          el("td", { class: "optional" }, fmtTime(c.created_at))));
      });
      next = page.next;
      more.hidden = next === null || next === undefined;
      if (!body.firstChild) body.append(el("tr", null, el("td", { colspan: "4", class: "muted" }, "No campaigns yet.")));
    }
    more.addEventListener("click", function () { load().catch(function (e) { showError(e.message); }); });
    await load();
    if (!alive()) return;
    const t = el("div", { class: "table-wrap" },
      el("table", { id: "campaigns" },
        el("thead", null, el("tr", null,
          el("th", { scope: "col" }, "Name"), el("th", { scope: "col", class: "optional" }, "Subject"),
          el("th", { scope: "col" }, "Status"), el("th", { scope: "col", class: "optional" }, "Created"))),
        body));
    show(heading("Campaigns"),
      el("div", { class: "actions" }, el("a", { href: "#/campaigns/new" }, "New campaign")),
      t, el("div", { class: "actions" }, more));
  }

  function field(id, label, control, hint) {
    control.id = id;
    if (hint) control.setAttribute("aria-describedby", id + "-hint");
    return el("div", null, el("label", { for: id }, label), control,
      hint ? el("p", { class: "hint", id: id + "-hint" }, hint) : null);
  }

  // ---- the campaign form (new and edit), its segment builder and send window ---------

  const OPERATORS = [["eq", "equals"], ["ne", "does not equal"], ["in", "is one of"], ["not_in", "is none of"],
    ["gt", "is greater than"], ["gte", "is at least"], ["lt", "is less than"], ["lte", "is at most"],
    ["exists", "exists"], ["not_exists", "does not exist"], ["starts_with", "starts with"]];
  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

  // A condition's value as typed: numbers and true/false are read as such, "quoted" text stays text.
  function parseScalar(text) {
    const t = text.trim();
    if (t.length >= 2 && t[0] === '"' && t[t.length - 1] === '"') return t.slice(1, -1);
    if (t === "true") return true;
    if (t === "false") return false;
    if (/^-?[0-9]+(\.[0-9]+)?$/.test(t)) return Number(t);
    return t;
  }

  function showScalar(v) {
    if (typeof v === "string" && (v === "true" || v === "false" || /^-?[0-9]+(\.[0-9]+)?$/.test(v.trim()))) return '"' + v + '"';
    return String(v);
  }

  function isCondition(x) {
    return x && typeof x === "object" && typeof x.attribute === "string";
  }

  // One level of conditions joined by all (and) or any (or): what the builder edits. A
  // deeper tree is edited as JSON instead.
  function segmentBuilder(segment) {
    const flat = !segment || (typeof segment === "object" && ((Array.isArray(segment.all) && segment.all.every(isCondition)) ||
      (Array.isArray(segment.any) && segment.any.every(isCondition)) || isCondition(segment)));
    if (!flat) {
      const json = el("textarea", { rows: "6", id: "seg-json" });
      json.value = JSON.stringify(segment, null, 2);
      return {
        element: field("seg-json", "Segment (JSON)", json, "This segment nests groups; edit it as JSON, or empty it to send to the whole list."),
        value: function () {
          if (!json.value.trim()) return null;
          try { return JSON.parse(json.value); } catch (e) { throw new Error("Segment: not valid JSON (" + e.message + ")."); }
        },
      };
    }
    const match = el("select", { id: "seg-match" }, el("option", { value: "all" }, "all of these conditions hold"),
      el("option", { value: "any" }, "any of these conditions holds"));
    const rows = el("div", { id: "seg-rows" });
    function addRow(c) {
      const attribute = el("input", { type: "text", class: "seg-attr", "aria-label": "Attribute", placeholder: "plan",
        autocomplete: "off", value: c ? c.attribute : "" });
      const op = el("select", { class: "seg-op", "aria-label": "Operator" },
        OPERATORS.map(function (o) { return el("option", { value: o[0] }, o[1]); }));
      op.value = c ? c.op : "eq";
      let shown = "";
      if (c && c.value !== undefined && c.value !== null) shown = Array.isArray(c.value) ? c.value.map(showScalar).join(", ") : showScalar(c.value);
      const value = el("input", { type: "text", class: "seg-value", "aria-label": "Value", autocomplete: "off", value: shown });
      const remove = el("button", { type: "button", class: "secondary small", "aria-label": "Remove this condition" }, "Remove");
      const row = el("div", { class: "seg-row" }, attribute, op, value, remove);
      function sync() { value.hidden = op.value === "exists" || op.value === "not_exists"; }
      op.addEventListener("change", sync);
      remove.addEventListener("click", function () { row.remove(); });
      sync();
      rows.append(row);
    }
    const conditions = !segment ? [] : isCondition(segment) ? [segment] : (segment.all || segment.any);
    if (segment && Array.isArray(segment.any)) match.value = "any";
    conditions.forEach(addRow);
    const add = el("button", { type: "button", class: "secondary small", id: "seg-add" }, "Add condition");
    add.addEventListener("click", function () { addRow(null); });
    return {
      element: el("fieldset", { class: "group", id: "segment" }, el("legend", null, "Segment (optional)"),
        el("p", { class: "hint" }, "Send only to subscribers whose attributes match. Values: numbers and true/false are " +
          "read as such (\"quote\" them to compare as text); is one of / is none of take values separated by commas. " +
          "No condition: the whole list."),
        field("seg-match", "Send to subscribers when", match), rows, el("div", { class: "actions" }, add)),
      value: function () {
        const list = [];
        rows.querySelectorAll(".seg-row").forEach(function (row) {
          const attribute = row.querySelector(".seg-attr").value.trim();
          const op = row.querySelector(".seg-op").value;
          const text = row.querySelector(".seg-value").value;
          if (!attribute) throw new Error("Segment: every condition needs an attribute name.");
          const c = { attribute: attribute, op: op };
          if (op === "in" || op === "not_in") c.value = text.split(",").map(function (x) { return x.trim(); })
            .filter(function (x) { return x; }).map(parseScalar);
          else if (op !== "exists" && op !== "not_exists") c.value = op === "starts_with" ? text : parseScalar(text);
          list.push(c);
        });
        if (!list.length) return null;
        const segmentValue = {};
        segmentValue[match.value] = list;
        return segmentValue;
      },
    };
  }

  function windowFields(w) {
    const start = el("input", { type: "time", value: w ? w.start : "" });
    const end = el("input", { type: "time", value: w ? w.end : "" });
    const zone = el("input", { type: "text", autocomplete: "off", placeholder: "the campaign's zone", value: w && w.time_zone ? w.time_zone : "" });
    const recipient = el("input", { type: "checkbox" });
    recipient.checked = !!(w && w.recipient_time_zone);
    const days = DAYS.map(function (d) {
      const box = el("input", { type: "checkbox", id: "w-day-" + d, value: d });
      box.checked = !!(w && w.days && w.days.indexOf(d) >= 0);
      return box;
    });
    return {
      element: el("fieldset", { class: "group", id: "send-window" }, el("legend", null, "Send window (optional)"),
        el("p", { class: "hint" }, "Deliver only between these times of day (and on these days); empty: at any time."),
        el("div", { class: "row" }, field("w-start", "From", start), field("w-end", "Until", end),
          field("w-zone", "Time zone", zone, "An IANA name, e.g. Europe/Paris; empty: the campaign's.")),
        el("div", { class: "days" }, el("span", { class: "days-label" }, "Days (none: every day)"), days.map(function (box) {
          return el("label", { class: "inline", for: box.id }, box, " " + box.value);
        })),
        el("label", { class: "inline", for: "w-recipient" }, (function () { recipient.id = "w-recipient"; return recipient; })(),
          " In each subscriber's own time zone (their time_zone attribute) when they have one")),
      value: function () {
        if (!start.value && !end.value) return null;
        if (!start.value || !end.value) throw new Error("Send window: give both times, or neither.");
        const v = { start: start.value, end: end.value, recipient_time_zone: recipient.checked };
        if (zone.value.trim()) v.time_zone = zone.value.trim();
        const chosen = days.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
        if (chosen.length) v.days = chosen;
        return v;
      },
    };
  }

  // The attempts field as the API takes it: a whole number, or null (empty: no limit of its own).
  function maxAttempts(text) {
    const t = String(text).trim();
    if (!t) return null;
    if (!/^[0-9]+$/.test(t) || Number(t) < 1 || Number(t) > 100) throw new Error("Delivery attempts: a whole number from 1 to 100, or empty.");
    return Number(t);
  }

  // The fields of a campaign; `c` (a campaign) fills them for an edit.
  function campaignForm(id, lists, c, submitLabel, onSubmit) {
    const name = el("input", { type: "text", required: true, maxlength: "500", value: c ? c.name : "" });
    const from = el("input", { type: "text", required: true, placeholder: "News <news@example.com>", value: c ? c.from : "" });
    const replyTo = el("input", { type: "text", value: c && c.reply_to ? c.reply_to : "" });
    const subject = el("input", { type: "text", required: true, value: c ? c.subject : "" });
    const chosen = c ? (c.list_ids || []).map(Number) : [];
    const list = el("select", { required: true, multiple: true, size: String(Math.min(6, Math.max(2, lists.length))) },
      lists.map(function (l) {
        return el("option", { value: String(Number(l.id)), selected: chosen.indexOf(Number(l.id)) >= 0 },
          l.name + " (" + fmtNumber(l.subscriber_count) + ")");
      }));
    const html = el("textarea", { rows: "8" });
    html.value = c && c.html ? c.html : "";
    const text = el("textarea", { rows: "5" });
    text.value = c && c.text ? c.text : "";
    const rate = el("input", { type: "text", placeholder: "100/m", pattern: "[0-9]+(\\.[0-9]+)?/[smhd]", value: c && c.send_rate ? c.send_rate : "" });
    const attempts = el("input", { type: "number", min: "1", max: "100", step: "1", inputmode: "numeric",
      value: c && c.max_attempts ? String(c.max_attempts) : "" });
    const trackOpens = el("input", { type: "checkbox" });
    trackOpens.checked = !!(c && c.track_opens);
    const trackClicks = el("input", { type: "checkbox" });
    trackClicks.checked = !!(c && c.track_clicks);
    const segment = segmentBuilder(c ? c.segment : null);
    const sendWindow = windowFields(c ? c.send_window : null);
    const form = el("form", { class: "card", id: id },
      field("c-name", "Name", name),
      field("c-from", "From", from, "A display name and address, e.g. News <news@example.com>."),
      field("c-reply-to", "Reply-To (optional)", replyTo),
      field("c-subject", "Subject", subject, "A template: {{first_name}} and the other subscriber fields work here."),
      field("c-list", "Lists", list, "One or more (Ctrl or Cmd to choose several); a subscriber on several gets one message."),
      field("c-html", "HTML body", html, "Mustache template; include {{unsubscribe_url}} for the unsubscribe link."),
      field("c-text", "Text body (optional)", text, "Left empty, Herald makes it from the HTML."),
      segment.element,
      field("c-rate", "Send rate (optional)", rate, "At most this many messages per second, minute, hour or day: 10/s, 100/m, 500/h."),
      field("c-max-attempts", "Delivery attempts (optional)", attempts,
        "1 to 100: a recipient still deferred after this many attempts fails. Empty: the server's limit " +
        "(the lower of the two applies)."),
      sendWindow.element,
      field("c-track-opens", "Track opens", trackOpens, "Adds a 1×1 image to the HTML part; each load counts as an open."),
      field("c-track-clicks", "Track clicks", trackClicks, "Links in the HTML part go through Herald, which counts each click."),
      el("div", { class: "actions" }, el("button", { type: "submit" }, submitLabel)));
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      let body;
      try {
        body = { name: name.value, from: from.value, subject: subject.value,
          list_ids: Array.from(list.selectedOptions).map(function (o) { return Number(o.value); }),
          track_opens: trackOpens.checked, track_clicks: trackClicks.checked,
          segment: segment.value(), send_window: sendWindow.value(), send_rate: rate.value.trim() || null,
          max_attempts: maxAttempts(attempts.value) };
        if (replyTo.value.trim()) body.reply_to = replyTo.value.trim();
        if (html.value) body.html = html.value;
        if (text.value) body.text = text.value;
      } catch (e) {
        showError(e.message);
        return;
      }
      try {
        await onSubmit(body);
      } catch (e) {
        showError(e.message);
      }
    });
    return form;
  }

  async function newCampaignView(alive) {
    setTitle("New campaign");
    const lists = await api("GET", "/v1/lists?limit=500");
    if (!alive()) return;
    const form = campaignForm("new-campaign", lists.data || [], null, "Create draft", async function (body) {
      // A new campaign has nothing to clear: leave the empty ones out.
      ["segment", "send_window", "send_rate", "max_attempts"].forEach(function (k) { if (body[k] === null) delete body[k]; });
      const c = await api("POST", "/v1/campaigns", body);
      clearError();
      go("#/campaigns/" + Number(c.id));
    });
    show(heading("New campaign"),
      (lists.data || []).length ? null : el("p", { class: "notice" }, "There is no list yet: ", el("a", { href: "#/lists" }, "make one"), " first."),
      form);
  }

  async function editCampaignView(id, alive) {
    const campaign = await api("GET", "/v1/campaigns/" + id);
    const lists = await api("GET", "/v1/lists?limit=500");
    if (!alive()) return;
    setTitle("Edit " + (campaign.name || "campaign " + id));
    if (campaign.status !== "draft") {
      return show(heading("Only a draft can be edited"), el("p", null, "This campaign is " + campaign.status + ". ",
        el("a", { href: "#/campaigns/" + Number(campaign.id) }, "Back to the campaign"), " (Duplicate makes an editable copy)."));
    }
    const form = campaignForm("edit-campaign", lists.data || [], campaign, "Save draft", async function (body) {
      await api("PATCH", "/v1/campaigns/" + id, body);
      clearError();
      go("#/campaigns/" + id);
    });
    show(heading("Edit " + (campaign.name || "campaign " + id)),
      el("p", null, el("a", { href: "#/campaigns/" + Number(campaign.id) }, "Back to the campaign without saving")), form);
  }

  function describeSegment(s) {
    if (!s) return "the whole list";
    const conditions = isCondition(s) ? [s] : (s.all || s.any);
    if (!Array.isArray(conditions) || !conditions.every(isCondition)) return JSON.stringify(s);
    const label = {};
    OPERATORS.forEach(function (o) { label[o[0]] = o[1]; });
    return conditions.map(function (c) {
      const v = c.value === undefined ? "" : " " + (Array.isArray(c.value) ? c.value.map(showScalar).join(", ") : showScalar(c.value));
      return c.attribute + " " + (label[c.op] || c.op) + v;
    }).join(s.any ? " or " : " and ");
  }

  function describeWindow(w) {
    if (!w) return "any time";
    return w.start + "–" + w.end + (w.days && w.days.length ? " on " + w.days.join(", ") : " every day") +
      (w.time_zone ? " (" + w.time_zone + ")" : "") + (w.recipient_time_zone ? ", in each subscriber's zone" : "");
  }

  const COUNTERS = [
    ["total", "Recipients"], ["expanded", "Expanded"], ["sent", "Sent"], ["remaining", "Remaining"],
    ["deferred", "Deferred"], ["held", "Held"], ["bounced", "Bounced"], ["failed", "Failed"],
    ["cancelled", "Cancelled"], ["skipped", "Skipped"], ["unsubscribed", "Unsubscribed"],
    ["complained", "Complaints"], ["opens", "Opens"], ["unique_opens", "Unique opens"], ["clicks", "Clicks"],
    ["unique_clicks", "Unique clicks"], ["rate_per_minute", "Per minute"],
  ];

  function percent(part, total) {
    return total > 0 ? Math.max(0, Math.min(100, (part / total) * 100)) : 0;
  }

  async function campaignView(id, alive) {
    let campaign = await api("GET", "/v1/campaigns/" + id);
    if (!alive()) return;
    setTitle(campaign.name || "Campaign " + id);
    const statusSlot = el("span", { id: "campaign-status" }, badge(campaign.status));
    const segs = {
      sent: el("span", { class: "seg-sent" }), failed: el("span", { class: "seg-failed" }),
      stopped: el("span", { class: "seg-stopped" }), queued: el("span", { class: "seg-queued" }),
    };
    const bar = el("div", { class: "bar", id: "progress", role: "progressbar", "aria-label": "Recipients with a final outcome",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" }, segs.sent, segs.failed, segs.stopped, segs.queued);
    const pct = el("p", { class: "percent", id: "progress-percent", "aria-live": "polite" }, "—");
    const eta = el("p", { class: "muted", id: "progress-eta" });
    const counters = {};
    const grid = el("dl", { class: "counters", id: "counters" }, COUNTERS.map(function (c) {
      counters[c[0]] = el("dd", { "data-counter": c[0] }, "—");
      return el("div", null, el("dt", null, c[1]), counters[c[0]]);
    }));
    const etaFigure = el("dd", { id: "eta-figure" }, "—");
    grid.append(el("div", null, el("dt", null, "Time left"), etaFigure));
    const actions = el("div", { class: "actions", id: "campaign-actions" });
    // Outcomes per minute (this node's, GET /v1/campaigns/{id}/timeline), as stacked bars.
    const chart = el("div", { id: "timeline", class: "chart" });
    const timeline = el("section", { "aria-labelledby": "timeline-h" },
      el("h2", { id: "timeline-h" }, "Outcomes per minute"), chart,
      el("ul", { class: "legend" }, el("li", { class: "l-sent" }, "sent"), el("li", { class: "l-deferred" }, "deferred"),
        el("li", { class: "l-failed" }, "bounced or failed")),
      el("p", { class: "hint" }, "Every attempt this node made, per minute, over the last hour (since it started)."));
    const failuresBody = el("tbody");
    const failures = el("section", { "aria-labelledby": "failures-h" },
      el("h2", { id: "failures-h" }, "Failures"),
      el("div", { class: "table-wrap" }, el("table", { id: "failures" },
        el("thead", null, el("tr", null, el("th", { scope: "col" }, "Recipient"), el("th", { scope: "col" }, "State"),
          el("th", { scope: "col" }, "Reason"))), failuresBody)));
    const linksBody = el("tbody");
    const links = el("section", { "aria-labelledby": "links-h" },
      el("h2", { id: "links-h" }, "Clicks per link"),
      el("div", { class: "table-wrap" }, el("table", { id: "links" },
        el("thead", null, el("tr", null, el("th", { scope: "col" }, "Link"), el("th", { scope: "col" }, "Clicks"),
          el("th", { scope: "col" }, "Unique"))), linksBody)));
    links.hidden = !campaign.track_clicks;
    const updated = el("p", { class: "hint", id: "updated" });
    let lastFailureCount = -1;
    let lastClicks = -1;
    let lastStatus = null;

    const ACTIONS = [
      { name: "send", label: "Send now", when: ["draft"], confirm: "Send this campaign to its list now?" },
      { name: "pause", label: "Pause", when: ["sending"], confirm: "Pause this campaign? Its waiting mail is held until you resume." },
      { name: "resume", label: "Resume", when: ["paused"], confirm: "Resume this campaign?" },
      { name: "retry-failed", label: "Retry failed", when: ["sending", "sent"],
        confirm: "Send again to the recipients whose delivery failed and who are still recipients (not suppressed)?",
        done: function (r) {
          say(r.retried === 1 ? "1 recipient is sent again." : fmtNumber(r.retried) + " recipients are sent again.");
        } },
      { name: "duplicate", label: "Duplicate", when: ["draft", "scheduled", "sending", "paused", "sent", "cancelled", "expired"], confirm: "Copy this campaign into a new draft?",
        done: function (copy) { go("#/campaigns/" + Number(copy.id)); } },
      { name: "cancel", label: "Cancel campaign", when: ["draft", "scheduled", "sending", "paused"], danger: true,
        confirm: "Cancel this campaign for good? Its undelivered mail is deleted." },
    ];
    const notice = el("p", { class: "notice", id: "campaign-notice", role: "status", hidden: true });
    function say(text) {
      notice.textContent = text;
      notice.hidden = false;
    }
    function renderActions(status) {
      if (status === lastStatus) return;
      lastStatus = status;
      scheduleSection.hidden = status !== "draft";
      const edit = status === "draft" ? [el("a", { class: "button", href: "#/campaigns/" + id + "/edit", "data-action": "edit" }, "Edit")] : [];
      actions.replaceChildren.apply(actions, edit.concat(ACTIONS.filter(function (a) { return a.when.indexOf(status) >= 0; }).map(function (a) {
        const b = el("button", { type: "button", class: a.danger ? "danger" : null, "data-action": a.name }, a.label);
        b.addEventListener("click", async function () {
          if (!window.confirm(a.confirm)) return;
          b.disabled = true;
          try {
            const result = await api("POST", "/v1/campaigns/" + id + "/" + a.name);
            clearError();
            b.disabled = false;
            if (a.done) a.done(result);
            if (a.name === "duplicate") return;
            campaign = result;
            lastStatus = null;
            renderActions(campaign.status);
            await tick();
          } catch (e) {
            showError(e.message);
            b.disabled = false;
          }
        });
        return b;
      })));
    }

    function render(s) {
      const total = s.total || 0;
      const failedN = (s.bounced || 0) + (s.failed || 0);
      const stopped = (s.cancelled || 0) + (s.skipped || 0);
      const queued = Math.max(0, (s.expanded || 0) - (s.sent || 0) - failedN - (s.cancelled || 0));
      segs.sent.style.width = percent(s.sent || 0, total) + "%";
      segs.failed.style.width = percent(failedN, total) + "%";
      segs.stopped.style.width = percent(stopped, total) + "%";
      segs.queued.style.width = percent(queued, total) + "%";
      const remaining = typeof s.remaining === "number" ? s.remaining : total;
      let done = total > 0 ? Math.floor(((total - remaining) / total) * 100) : (FINAL.indexOf(s.status) >= 0 ? 100 : 0);
      done = Math.max(0, Math.min(100, done));
      bar.setAttribute("aria-valuenow", String(done));
      bar.setAttribute("aria-valuetext", done + " % (" + (total - remaining) + " of " + total + " recipients)");
      pct.textContent = done + " % done";
      pct.setAttribute("data-percent", String(done));
      COUNTERS.forEach(function (c) { counters[c[0]].textContent = fmtNumber(s[c[0]]); });
      let when = "";
      if (s.estimated_completion) when = "Estimated completion " + fmtTime(s.estimated_completion) + ". ";
      if (s.started_at) when += "Started " + fmtTime(s.started_at) + ". ";
      if (s.finished_at) when += "Finished " + fmtTime(s.finished_at) + ". ";
      if (s.completion) when += "Completion: " + s.completion + ".";
      eta.textContent = when;
      etaFigure.textContent = s.estimated_completion ? fmtDuration(new Date(s.estimated_completion).getTime() - Date.now())
        : FINAL.indexOf(s.status) >= 0 ? "done" : "—";
      statusSlot.replaceChildren(badge(s.status));
      renderActions(s.status);
      updated.textContent = "Updated " + new Date().toLocaleTimeString() +
        (FINAL.indexOf(s.status) >= 0 ? "" : "; refreshed every second.");
    }

    function renderTimeline(t) {
      const data = t.data || [];
      const total = function (m) { return m.sent + m.deferred + m.bounced + m.failed; };
      // From the first busy minute (at least the last 10 minutes shown).
      let first = data.findIndex(function (m) { return total(m) > 0; });
      if (first < 0) first = data.length;
      const shown = data.slice(Math.max(0, Math.min(first, data.length - 10)));
      const W = 600, H = 150, left = 34, bottom = 18;
      const max = Math.max(1, Math.max.apply(null, shown.map(total)));
      const step = (W - left) / Math.max(1, shown.length);
      const sums = shown.reduce(function (a, m) {
        return { sent: a.sent + m.sent, deferred: a.deferred + m.deferred, failed: a.failed + m.bounced + m.failed };
      }, { sent: 0, deferred: 0, failed: 0 });
      const root = svgEl("svg", { viewBox: "0 0 " + W + " " + (H + bottom), class: "chart-svg", role: "img",
        "aria-label": "Over " + shown.length + " minutes: " + sums.sent + " sent, " + sums.deferred + " deferred, " +
          sums.failed + " bounced or failed; at most " + max + " in a minute." });
      root.append(svgEl("line", { x1: left, y1: H, x2: W, y2: H, class: "axis" }),
        svgEl("text", { x: left - 4, y: 10, class: "tick", "text-anchor": "end" }, max),
        svgEl("text", { x: left - 4, y: H, class: "tick", "text-anchor": "end" }, 0));
      shown.forEach(function (m, i) {
        const g = svgEl("g", { "data-minute": m.minute, "data-sent": m.sent, "data-deferred": m.deferred,
          "data-failed": m.bounced + m.failed });
        let y = H;
        [["sent", m.sent], ["failed", m.bounced + m.failed], ["deferred", m.deferred]].forEach(function (part) {
          if (!part[1]) return;
          const h = (part[1] / max) * (H - 12);
          y -= h;
          const bar = svgEl("rect", { x: left + i * step + 1, y: y, width: Math.max(1, step - 2), height: h, class: "bar-" + part[0] });
          bar.append(svgEl("title", null, new Date(m.minute).toLocaleTimeString() + ": " + part[1] + " " + part[0]));
          g.append(bar);
        });
        root.append(g);
      });
      if (shown.length) {
        const label = function (m) { return new Date(m.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); };
        root.append(svgEl("text", { x: left, y: H + bottom - 3, class: "tick" }, label(shown[0])),
          svgEl("text", { x: W, y: H + bottom - 3, class: "tick", "text-anchor": "end" }, label(shown[shown.length - 1])));
      }
      chart.replaceChildren(root);
    }

    let lastSignature = "";
    let ticks = 0;
    async function loadTimeline(s) {
      const signature = [s.sent, s.bounced, s.failed, s.deferred].join();
      if (signature === lastSignature && ticks++ % 10 !== 0) return;
      lastSignature = signature;
      const t = await api("GET", "/v1/campaigns/" + id + "/timeline?minutes=60");
      if (alive()) renderTimeline(t);
    }

    async function loadFailures() {
      const page = await api("GET", "/v1/campaigns/" + id + "/failures?limit=100");
      if (!alive()) return;
      const rows = (page.data || []).map(function (f) {
        return el("tr", null, el("td", null, f.email || "#" + f.subscriber_id), el("td", null, badge(f.state)),
          el("td", null, f.reason || "—"));
      });
      if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "3", class: "muted" }, "No failures.")));
      failuresBody.replaceChildren.apply(failuresBody, rows);
    }

    async function loadLinks() {
      const page = await api("GET", "/v1/campaigns/" + id + "/links");
      if (!alive()) return;
      const rows = (page.data || []).map(function (l) {
        return el("tr", null, el("td", { class: "url" }, l.url), el("td", null, fmtNumber(l.clicks)),
          el("td", null, fmtNumber(l.unique_clicks)));
      });
      if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "3", class: "muted" }, "No clicks yet.")));
      linksBody.replaceChildren.apply(linksBody, rows);
    }

    // Every second while the campaign may still change, every 10 s once it is finished
    // (a late bounce or a retry-failed can still change it).
    let pollEvery = 0;
    function schedule(status) {
      const every = FINAL.indexOf(status) >= 0 ? 10000 : 1000;
      if (every === pollEvery || pollEvery < 0 || !alive()) return;
      stopTimers();
      pollEvery = every;
      timers.push(setInterval(tick, every));
    }

    let busy = false;
    async function tick() {
      if (busy || !alive()) return;
      busy = true;
      try {
        const s = await api("GET", "/v1/campaigns/" + id + "/stats");
        if (!alive()) return;
        render(s);
        const failureCount = (s.bounced || 0) + (s.failed || 0);
        if (failureCount !== lastFailureCount) {
          lastFailureCount = failureCount;
          await loadFailures();
        }
        await loadTimeline(s);
        if (campaign.track_clicks && (s.clicks || 0) !== lastClicks) {
          lastClicks = s.clicks || 0;
          await loadLinks();
        }
        schedule(s.status);
      } catch (e) {
        if (alive()) showError(e.message);
        if (e.status === 401 || e.status === 404) { stopTimers(); pollEvery = -1; }
      } finally {
        busy = false;
      }
    }

    // The schedule (send_at, deadline) in the zone it was given in; null until scheduled.
    const sendAtSlot = el("dd", { id: "campaign-send-at" });
    const deadlineSlot = el("dd", { id: "campaign-deadline" });
    function renderSchedule(c) {
      sendAtSlot.textContent = c.send_at ? fmtZoned(c.send_at, c.time_zone || "UTC") : "not scheduled";
      sendAtSlot.setAttribute("data-time", c.send_at || "");
      deadlineSlot.textContent = c.deadline ? fmtZoned(c.deadline, c.time_zone || "UTC")
        : c.send_at ? "none: starts however late" : "—";
      deadlineSlot.setAttribute("data-time", c.deadline || "");
    }
    renderSchedule(campaign);
    const meta = el("dl", { class: "meta" },
      el("dt", null, "Status"), el("dd", null, statusSlot),
      el("dt", null, "Subject"), el("dd", { id: "campaign-subject" }, campaign.subject),
      el("dt", null, "From"), el("dd", null, campaign.from),
      el("dt", null, "Lists"), el("dd", null, (campaign.list_ids || []).map(function (l, i) {
        return [i ? ", " : "", el("a", { href: "#/lists/" + Number(l) }, "list " + Number(l))];
      })),
      el("dt", null, "Segment"), el("dd", { id: "campaign-segment" }, describeSegment(campaign.segment)),
      el("dt", null, "Send rate"), el("dd", null, campaign.send_rate || "as fast as delivery allows"),
      el("dt", null, "Send window"), el("dd", { id: "campaign-window" }, describeWindow(campaign.send_window)),
      el("dt", null, "Delivery attempts"), el("dd", { id: "campaign-max-attempts" },
        campaign.max_attempts ? "at most " + fmtNumber(campaign.max_attempts) : "the server's limit"),
      el("dt", null, "Scheduled for"), sendAtSlot,
      el("dt", null, "Deadline"), deadlineSlot,
      el("dt", null, "Tracking"), el("dd", null, [campaign.track_opens ? "opens" : null, campaign.track_clicks ? "clicks" : null]
        .filter(Boolean).join(" and ") || "off"));
    // Scheduling a draft: a local date and time in an IANA time zone (the browser's by default).
    const sendAt = el("input", { type: "datetime-local", required: true });
    let browserZone = "UTC";
    try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (_) { browserZone = "UTC"; }
    const zone = el("input", { type: "text", required: true, value: browserZone, autocomplete: "off" });
    const deadline = el("input", { type: "datetime-local" });
    const scheduleForm = el("form", { class: "row", id: "schedule" },
      field("schedule-at", "Send at", sendAt), field("schedule-zone", "Time zone", zone, "An IANA name, e.g. Europe/Paris."),
      field("schedule-deadline", "Deadline (optional)", deadline,
        "In the same zone. If the campaign could not start by then (Herald was down), it expires instead of sending late."),
      el("div", null, el("button", { type: "submit", class: "secondary" }, "Schedule")));
    const scheduleSection = el("section", { "aria-labelledby": "schedule-h", hidden: true },
      el("h2", { id: "schedule-h" }, "Schedule"), scheduleForm);
    scheduleForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        const body = { send_at: sendAt.value, time_zone: zone.value.trim() };
        if (deadline.value) body.deadline = deadline.value;
        const r = await api("POST", "/v1/campaigns/" + id + "/schedule", body);
        clearError();
        say("Scheduled for " + fmtTime(r.send_at) + " (" + sendAt.value.replace("T", " ") + " " + r.time_zone + ")" +
          (r.deadline ? ", deadline " + deadline.value.replace("T", " ") + "." : "."));
        campaign = r;
        renderSchedule(r);
        renderActions(r.status);
        await tick();
      } catch (e) {
        showError(e.message);
      }
    });

    const testEmails = el("input", { type: "text", autocomplete: "off", placeholder: "me@example.com, colleague@example.com" });
    const testForm = el("form", { class: "row", id: "test-send" },
      field("test-emails", "Addresses", testEmails, "Up to 20 addresses, separated by commas; rendered as for a subscriber with that address."),
      el("div", null, el("button", { type: "submit", class: "secondary" }, "Send test")));
    testForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const emails = testEmails.value.split(",").map(function (x) { return x.trim(); }).filter(function (x) { return x; });
      if (!emails.length) return;
      try {
        const r = await api("POST", "/v1/campaigns/" + id + "/test", { emails: emails });
        clearError();
        say(r.accepted === 1 ? "1 test message queued." : fmtNumber(r.accepted) + " test messages queued.");
      } catch (e) {
        showError(e.message);
      }
    });
    // Preview: the campaign rendered for one address (a subscriber's, or any), nothing sent.
    const previewEmail = el("input", { type: "text", autocomplete: "off", list: "preview-emails", placeholder: "ann@example.com" });
    const previewChoices = el("datalist", { id: "preview-emails" });
    const previewOut = el("div", { id: "preview-output", "aria-live": "polite" });
    const previewForm = el("form", { class: "row", id: "preview" },
      field("preview-email", "Subscriber's email", previewEmail,
        "Rendered with that subscriber's fields (any other address: as a subscriber with only the email). Nothing is sent."),
      previewChoices, el("div", null, el("button", { type: "submit", class: "secondary" }, "Preview")));
    previewForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const address = previewEmail.value.trim();
      if (!address) return;
      try {
        const r = await api("GET", "/v1/campaigns/" + id + "/preview?email=" + encodeURIComponent(address));
        clearError();
        // The HTML part in a sandboxed frame (no script, no same-origin access; the page's
        // CSP still applies to it), never parsed into this page.
        const frame = r.html === null || r.html === undefined ? null
          : el("iframe", { id: "preview-html", class: "preview-frame", sandbox: "", title: "HTML part of the preview",
            referrerpolicy: "no-referrer" });
        if (frame) frame.srcdoc = r.html;
        previewOut.replaceChildren(
          el("dl", { class: "meta" },
            el("dt", null, "To"), el("dd", { id: "preview-to" }, r.email + (r.subscriber_id
              ? " (subscriber " + Number(r.subscriber_id) + ")" : " (not a subscriber: only the email is known)")),
            el("dt", null, "Subject"), el("dd", { id: "preview-subject" }, r.subject)),
          frame ? el("h3", null, "HTML part") : null, frame,
          el("h3", null, "Text part"), el("pre", { id: "preview-text", class: "preview-text" }, r.text));
      } catch (e) {
        showError(e.message);
      }
    });
    const firstList = (campaign.list_ids || [])[0];
    if (firstList) {
      api("GET", "/v1/lists/" + Number(firstList) + "/subscribers?limit=50&status=active").then(function (page) {
        if (!alive()) return;
        previewChoices.replaceChildren.apply(previewChoices, (page.data || []).map(function (x) {
          return el("option", { value: x.email }, subscriberName(x));
        }));
      }).catch(function () { /* the suggestions are optional */ });
    }

    show(heading(campaign.name || "Campaign " + id), meta, actions, notice, scheduleSection,
      el("section", { "aria-labelledby": "progress-h" },
        el("h2", { id: "progress-h" }, "Progress"), pct, bar,
        el("ul", { class: "legend" }, el("li", { class: "l-sent" }, "sent"), el("li", { class: "l-failed" }, "bounced or failed"),
          el("li", { class: "l-stopped" }, "cancelled or skipped"), el("li", { class: "l-queued" }, "expanded, waiting"),
          el("li", { class: "l-rest" }, "not yet expanded")),
        eta, grid, updated),
      timeline, failures, links,
      el("section", { "aria-labelledby": "preview-h" }, el("h2", { id: "preview-h" }, "Preview"), previewForm, previewOut),
      el("section", { "aria-labelledby": "test-h" }, el("h2", { id: "test-h" }, "Test send"), testForm));
    renderActions(campaign.status);
    await tick();
  }

  // ---- lists -------------------------------------------------------------------------

  async function listsView(alive) {
    setTitle("Lists");
    const page = await api("GET", "/v1/lists?limit=500");
    if (!alive()) return;
    const rows = (page.data || []).map(function (l) {
      return el("tr", { "data-list": l.id },
        el("td", null, el("a", { href: "#/lists/" + Number(l.id) }, l.name)),
        el("td", { class: "num" }, fmtNumber(l.subscriber_count)),
        el("td", { class: "optional" }, fmtTime(l.created_at)));
    });
    if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "3", class: "muted" }, "No lists yet.")));
    const name = el("input", { type: "text", required: true, maxlength: "500" });
    const form = el("form", { class: "card", id: "new-list" },
      field("list-name", "New list name", name),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Create list")));
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        const l = await api("POST", "/v1/lists", { name: name.value });
        clearError();
        go("#/lists/" + Number(l.id));
      } catch (e) {
        showError(e.message);
      }
    });
    show(heading("Lists"),
      table([{ label: "Name" }, { label: "Subscribers", class: "num" }, { label: "Created", class: "optional" }], rows, { id: "lists" }),
      el("h2", null, "Create a list"), form);
  }

  function subscriberName(s) {
    if (s.name) return s.name;
    const parts = [s.first_name, s.last_name].filter(function (p) { return p; });
    return parts.length ? parts.join(" ") : "—";
  }

  async function listView(id, alive) {
    const list = await api("GET", "/v1/lists/" + id);
    if (!alive()) return;
    setTitle(list.name);
    const count = el("span", { id: "list-count" }, fmtNumber(list.subscriber_count));

    // Import
    const file = el("input", { type: "file", accept: ".csv,text/csv", required: true });
    const progress = el("progress", { id: "import-progress", max: "100", value: "0", hidden: true, "aria-label": "Upload progress" });
    const report = el("div", { id: "import-report", "aria-live": "polite" });
    const importButton = el("button", { type: "submit" }, "Import");
    const importForm = el("form", { class: "card", id: "import" },
      field("csv-file", "CSV file", file,
        "The header row names the columns: email (required), first_name, last_name, name; other columns become attributes. " +
        "Existing subscribers keep their status."),
      el("div", { class: "actions" }, importButton), progress, report);
    importForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const f = file.files && file.files[0];
      if (!f) return;
      importButton.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      report.replaceChildren(el("p", { class: "muted" }, "Uploading " + f.name + "…"));
      try {
        const r = await upload("/v1/lists/" + id + "/import", f, function (fraction) {
          progress.value = Math.round(fraction * 100);
        });
        progress.value = 100;
        clearError();
        showReport(r);
        const fresh = await api("GET", "/v1/lists/" + id);
        count.textContent = fmtNumber(fresh.subscriber_count);
        await loadSubscribers(true);
      } catch (e) {
        report.replaceChildren();
        showError(e.message);
      } finally {
        importButton.disabled = false;
      }
    });

    function showReport(r) {
      const parts = [
        el("p", { class: "notice", id: "import-summary" },
          fmtNumber(r.rows) + " lines read: " + fmtNumber(r.imported) + " imported (" + fmtNumber(r.created) + " new, " +
          fmtNumber(r.updated) + " updated, " + fmtNumber(r.unchanged) + " unchanged), " +
          fmtNumber(r.added_to_list) + " added to the list, " + fmtNumber(r.rejected_count) + " rejected."),
      ];
      if (r.rejected && r.rejected.length) {
        parts.push(el("h3", null, "Rejected lines"));
        parts.push(table([{ label: "Line", class: "num" }, { label: "Email as written" }, { label: "Reason" }],
          r.rejected.map(function (x) {
            return el("tr", null, el("td", { class: "num" }, String(x.line)), el("td", null, x.email === null ? "—" : x.email),
              el("td", null, x.reason));
          }), { id: "rejections" }));
        if (r.rejected_truncated) parts.push(el("p", { class: "hint" }, "Only the first " + r.rejected.length + " rejected lines are listed."));
      }
      report.replaceChildren.apply(report, parts);
    }

    // Subscribers
    const status = el("select", null, el("option", { value: "" }, "Any"),
      ["active", "unsubscribed", "bounced", "complained"].map(function (s) { return el("option", { value: s }, s); }));
    const email = el("input", { type: "search", autocomplete: "off", placeholder: "ann, @example.com, Lovelace", maxlength: "200" });
    const filter = el("form", { class: "row", id: "subscriber-filter", role: "search" },
      field("f-status", "Status", status), field("f-email", "Search", email, "A part of the email address or of a name."),
      el("div", null, el("button", { type: "submit" }, "Show")));
    const body = el("tbody");
    const rowNotice = el("p", { class: "notice", id: "subscriber-notice", role: "status", hidden: true });
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More subscribers");
    let next = null;

    async function loadSubscribers(reset) {
      if (reset) { next = null; body.replaceChildren(); }
      let path = "/v1/lists/" + id + "/subscribers?limit=100";
      const search = email.value.trim();
      if (search) path += "&q=" + encodeURIComponent(search);
      if (status.value) path += "&status=" + encodeURIComponent(status.value);
      if (next !== null) path += "&after=" + encodeURIComponent(next);
      const page = await api("GET", path);
      const rows = page.data || [];
      next = page.next;
      if (!alive()) return;
      rows.forEach(function (s) {
        const row = el("tr", { "data-subscriber": s.id });
        const remove = el("button", { type: "button", class: "secondary small", "data-row-action": "remove",
          "aria-label": "Remove " + s.email + " from this list" }, "Remove");
        remove.addEventListener("click", async function () {
          if (!window.confirm("Take " + s.email + " off this list? The subscriber stays on the tenant's other lists.")) return;
          try {
            await api("DELETE", "/v1/lists/" + id + "/subscribers/" + Number(s.id));
            clearError();
            row.remove();
            const fresh = await api("GET", "/v1/lists/" + id);
            count.textContent = fmtNumber(fresh.subscriber_count);
            rowNotice.textContent = s.email + " was removed from this list.";
            rowNotice.hidden = false;
          } catch (e) {
            showError(e.message);
          }
        });
        const suppress = el("button", { type: "button", class: "danger small", "data-row-action": "suppress",
          "aria-label": "Suppress " + s.email }, "Suppress");
        suppress.addEventListener("click", async function () {
          if (!window.confirm("Suppress " + s.email + "? No campaign of this tenant will send to it until the suppression is deleted.")) return;
          try {
            await api("POST", "/v1/suppressions", { email: s.email, reason: "manual" });
            clearError();
            suppress.disabled = true;
            rowNotice.textContent = s.email + " is suppressed.";
            rowNotice.hidden = false;
          } catch (e) {
            showError(e.message);
          }
        });
        append(row, [el("td", null, s.email), el("td", { class: "subscriber-name" }, subscriberName(s)),
          el("td", null, badge(s.status)), el("td", { class: "optional" }, fmtTime(s.created_at)),
          el("td", { class: "row-actions" }, remove, " ", suppress)]);
        body.append(row);
      });
      more.hidden = next === null || next === undefined;
      if (!body.firstChild) body.append(el("tr", null, el("td", { colspan: "5", class: "muted" }, "No subscribers match.")));
    }
    filter.addEventListener("submit", function (event) {
      event.preventDefault();
      loadSubscribers(true).catch(function (e) { showError(e.message); });
    });
    more.addEventListener("click", function () {
      if (body.lastChild && body.lastChild.querySelector(".muted")) body.lastChild.remove();
      loadSubscribers(false).catch(function (e) { showError(e.message); });
    });
    await loadSubscribers(true);
    if (!alive()) return;
    show(heading(list.name),
      el("p", { class: "muted" }, "List ", String(Number(list.id)), " · ", count, " subscribers"),
      el("h2", null, "Import subscribers from CSV"), importForm,
      el("h2", null, "Subscribers"), filter,
      rowNotice,
      table([{ label: "Email" }, { label: "Name" }, { label: "Status" }, { label: "Added", class: "optional" },
        { label: "Actions" }], body, { id: "subscribers" }),
      el("div", { class: "actions" }, more));
  }

  // ---- SMTP users --------------------------------------------------------------------

  async function smtpUsersView(alive) {
    setTitle("SMTP users");
    const body = el("tbody");
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More users");
    const notice = el("p", { class: "notice", id: "smtp-user-notice", role: "status", hidden: true });
    // A password made by the server, shown once (as text, never in a URL), until dismissed
    // or another page is opened; Herald keeps only its hash.
    const secret = el("div", { class: "card secret", id: "smtp-password", "aria-live": "polite", hidden: true });
    let next = null;

    function say(text) {
      notice.textContent = text;
      notice.hidden = false;
    }

    function showPassword(user, made) {
      const dismiss = el("button", { type: "button", class: "secondary small", id: "smtp-password-dismiss" }, "Done: hide it");
      dismiss.addEventListener("click", function () { secret.hidden = true; secret.replaceChildren(); });
      secret.replaceChildren(
        el("p", null, (made ? "The password of the new user " : "The new password of ") + user.username + ":"),
        el("p", null, el("code", { id: "smtp-password-value", class: "password" }, user.password)),
        el("p", { class: "hint" }, "Copy it now: it is shown this once, and Herald keeps only a salted hash of it. " +
          "Applications send with it over SMTP (AUTH PLAIN or LOGIN, after STARTTLS)."),
        el("div", { class: "actions" }, dismiss));
      secret.hidden = false;
    }

    function row(u) {
      const changed = el("td", { class: "optional" }, fmtTime(u.password_changed_at));
      const reset = el("button", { type: "button", class: "secondary small", "data-user-action": "reset",
        "aria-label": "New password for " + u.username }, "New password");
      const del = el("button", { type: "button", class: "danger small", "data-user-action": "delete",
        "aria-label": "Delete " + u.username }, "Delete");
      const tr = el("tr", { "data-smtp-user": u.id },
        el("td", { class: "username" }, u.username), el("td", { class: "optional" }, fmtTime(u.created_at)), changed,
        el("td", null, u.last_used_at ? fmtTime(u.last_used_at) : "never"),
        el("td", { class: "row-actions" }, reset, " ", del));
      reset.addEventListener("click", async function () {
        if (!window.confirm("Give " + u.username + " a new password? The old one stops working at once.")) return;
        try {
          const r = await api("POST", "/v1/smtp-users/" + Number(u.id) + "/reset-password");
          clearError();
          changed.textContent = fmtTime(r.password_changed_at);
          showPassword(r, false);
          say(u.username + " has a new password.");
        } catch (e) {
          showError(e.message);
        }
      });
      del.addEventListener("click", async function () {
        if (!window.confirm("Delete " + u.username + "? Applications using it can no longer send.")) return;
        try {
          await api("DELETE", "/v1/smtp-users/" + Number(u.id));
          clearError();
          tr.remove();
          if (!body.firstChild) body.append(empty());
          say(u.username + " was deleted.");
        } catch (e) {
          showError(e.message);
        }
      });
      return tr;
    }

    function empty() {
      return el("tr", { class: "empty" }, el("td", { colspan: "5", class: "muted" }, "No SMTP users yet."));
    }

    async function load() {
      const page = await api("GET", "/v1/smtp-users?limit=100" + (next !== null ? "&after=" + encodeURIComponent(next) : ""));
      if (!alive()) return;
      body.querySelectorAll("tr.empty").forEach(function (r) { r.remove(); });
      (page.data || []).forEach(function (u) { body.append(row(u)); });
      next = page.next === undefined ? null : page.next;
      more.hidden = next === null;
      if (!body.firstChild) body.append(empty());
    }

    const username = el("input", { type: "text", required: true, maxlength: "64", autocomplete: "off", spellcheck: "false",
      placeholder: "shop@example.com" });
    const form = el("form", { class: "card", id: "new-smtp-user" },
      field("smtp-username", "User name", username,
        "Letters, digits and . _ @ + - (up to 64), unique on this server ignoring case. Herald makes the password."),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Create user")));
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        const u = await api("POST", "/v1/smtp-users", { username: username.value.trim() });
        clearError();
        username.value = "";
        body.querySelectorAll("tr.empty").forEach(function (r) { r.remove(); });
        body.append(row(u));
        showPassword(u, true);
        say(u.username + " was created.");
      } catch (e) {
        showError(e.message);
      }
    });
    more.addEventListener("click", function () { load().catch(function (e) { showError(e.message); }); });
    await load();
    if (!alive()) return;
    show(heading("SMTP users"),
      el("p", { class: "muted" }, "Accounts your applications authenticate with on Herald's SMTP listeners; their mail " +
        "is this tenant's, under its quota and limits."),
      notice, secret,
      table([{ label: "User name" }, { label: "Created", class: "optional" }, { label: "Password changed", class: "optional" },
        { label: "Last used" }, { label: "Actions" }], body, { id: "smtp-users" }),
      el("div", { class: "actions" }, more),
      el("h2", null, "Create an SMTP user"), form);
  }

  // ---- postmaster (admin key) ---------------------------------------------------------

  function fmtWindow(d) {
    if (d.window === null || d.window === undefined) return "—";
    return fmtNumber(d.active) + " active / " + fmtNumber(Math.floor(d.window)) + " (max " + fmtNumber(d.limit) + ")";
  }

  async function postmasterView(alive) {
    setTitle("Postmaster");
    const summary = el("dl", { class: "counters", id: "queue-summary" });
    const destinationsBody = el("tbody");
    const heldBody = el("tbody");
    const heldTotal = el("span", { id: "held-total" }, "—");
    const logBody = el("tbody");
    const notice = el("p", { class: "notice", id: "postmaster-notice", role: "status", hidden: true });
    const updated = el("p", { class: "hint", id: "postmaster-updated" });
    const refresh = el("button", { type: "button", class: "secondary", id: "postmaster-refresh" }, "Refresh now");

    function say(text) {
      notice.textContent = text;
      notice.hidden = false;
    }

    function renderQueue(q) {
      const paused = Object.keys(q.held_campaigns || {}).sort();
      const items = [["messages", "Messages queued", fmtNumber(q.messages)], ["in_flight", "In delivery", fmtNumber(q.in_flight)],
        ["held", "On hold", fmtNumber(q.held)], ["destinations", "Destinations", fmtNumber((q.destinations || []).length)],
        ["paused_campaigns", "Paused campaigns", paused.length ? paused.map(function (t) {
          return t + " (" + fmtNumber(q.held_campaigns[t]) + ")";
        }).join(", ") : "none"]];
      summary.replaceChildren.apply(summary, items.map(function (i) {
        return el("div", null, el("dt", null, i[1]), el("dd", { "data-counter": i[0] }, i[2]));
      }));
      const rows = (q.destinations || []).map(function (d) {
        return el("tr", { "data-destination": d.name },
          el("td", null, d.name), el("td", { class: "num" }, fmtNumber(d.messages)),
          el("td", { class: "num optional" }, fmtNumber(d.recipients)), el("td", { class: "num" }, fmtNumber(d.deferred)),
          el("td", null, fmtTime(d.oldest)), el("td", { class: "optional" }, fmtWindow(d)),
          el("td", { class: "backoff" }, d.backoff_until ? "until " + fmtTime(d.backoff_until) + (d.backoff_reason ? ": " + d.backoff_reason : "") : "—"),
          el("td", { class: "reply" }, d.last_reply || "—"));
      });
      if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "8", class: "muted" }, "Nothing is waiting.")));
      destinationsBody.replaceChildren.apply(destinationsBody, rows);
    }

    function steer(m, action) {
      const what = action === "release" ? "Release message " + m.id + " for delivery now?"
        : "Delete message " + m.id + " for good? Its recipients get no bounce.";
      return async function () {
        if (!window.confirm(what)) return;
        try {
          if (action === "release") await api("POST", "/v1/admin/messages/" + encodeURIComponent(m.id) + "/release");
          else await api("DELETE", "/v1/admin/messages/" + encodeURIComponent(m.id));
          clearError();
          say("Message " + m.id + (action === "release" ? " was released." : " was deleted."));
          await load();
        } catch (e) {
          showError(e.message);
        }
      };
    }

    function renderHeld(h) {
      heldTotal.textContent = fmtNumber(h.total);
      const rows = (h.data || []).map(function (m) {
        const release = el("button", { type: "button", class: "secondary small", "data-held-action": "release",
          "aria-label": "Release message " + m.id }, "Release");
        release.addEventListener("click", steer(m, "release"));
        const del = el("button", { type: "button", class: "danger small", "data-held-action": "delete",
          "aria-label": "Delete message " + m.id }, "Delete");
        del.addEventListener("click", steer(m, "delete"));
        return el("tr", { "data-held": m.id },
          el("td", { class: "queue-id" }, m.id), el("td", { class: "optional" }, fmtTime(m.arrival)),
          el("td", null, m.sender || "<>"),
          el("td", null, (m.recipients || []).map(function (r) { return r.address + " (" + r.state + ")"; }).join(", ")),
          el("td", { class: "optional" }, [m.tenant ? "tenant " + m.tenant : null, m.campaign ? "campaign " + m.campaign : null]
            .filter(Boolean).join(", ") || "—"),
          el("td", { class: "row-actions" }, release, " ", del));
      });
      if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "6", class: "muted" }, "No message is on hold.")));
      heldBody.replaceChildren.apply(heldBody, rows);
    }

    function renderLog(l) {
      const rows = (l.data || []).map(function (e) {
        return el("tr", null, el("td", null, fmtTime(e.time)), el("td", null, badge(e.result)), el("td", null, e.recipient),
          el("td", { class: "optional queue-id" }, e.queue_id), el("td", { class: "reply" }, e.reply || "—"));
      });
      if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "5", class: "muted" }, "The delivery log is empty.")));
      logBody.replaceChildren.apply(logBody, rows);
    }

    let busy = false;
    async function load() {
      if (busy) return;
      busy = true;
      try {
        const q = await api("GET", "/v1/admin/queue");
        const h = await api("GET", "/v1/admin/held?limit=200");
        const l = await api("GET", "/v1/admin/log?limit=100");
        if (!alive()) return;
        renderQueue(q);
        renderHeld(h);
        renderLog(l);
        updated.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshed every 5 seconds.";
      } finally {
        busy = false;
      }
    }
    refresh.addEventListener("click", function () { load().catch(function (e) { showError(e.message); }); });
    await load();
    if (!alive()) return;
    show(heading("Postmaster"),
      el("p", { class: "muted" }, "This node's queue, as its queue manager sees it. Holds, releases and deletions " +
        "made here take effect at once; herald queue … on the host does the same from the files."),
      el("div", { class: "actions" }, refresh), notice, summary,
      el("section", { "aria-labelledby": "destinations-h" }, el("h2", { id: "destinations-h" }, "Destinations"),
        table([{ label: "Destination" }, { label: "Messages", class: "num" }, { label: "Recipients", class: "num optional" },
          { label: "Deferred", class: "num" }, { label: "Oldest" }, { label: "Window", class: "optional" }, { label: "Back-off" },
          { label: "Last reply" }], destinationsBody, { id: "destinations" })),
      el("section", { "aria-labelledby": "held-h" }, el("h2", { id: "held-h" }, "On hold (", heldTotal, ")"),
        table([{ label: "Queue id" }, { label: "Arrived", class: "optional" }, { label: "Sender" }, { label: "Recipients" },
          { label: "Tenant, campaign", class: "optional" }, { label: "Actions" }], heldBody, { id: "held" })),
      el("section", { "aria-labelledby": "log-h" }, el("h2", { id: "log-h" }, "Recent deliveries"),
        table([{ label: "Time" }, { label: "Result" }, { label: "Recipient" }, { label: "Queue id", class: "optional" },
          { label: "Reply" }], logBody, { id: "delivery-log" })),
      updated);
    timers.push(setInterval(function () {
      load().catch(function (e) {
        if (alive()) showError(e.message);
        if (e.status === 401 || e.status === 403) stopTimers();
      });
    }, 5000));
  }

  route();
})();
