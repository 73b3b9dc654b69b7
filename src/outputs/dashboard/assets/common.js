// proviso pages: what every page shares. Tokens come from the sign-in form
// or from the URL fragment (#token=…, printed by `proviso demo`; a fragment
// never reaches the server or its logs). They stay in this tab only
// (sessionStorage), one per page.
"use strict";

const Proviso = (() => {
  const $ = (id) => document.getElementById(id);

  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 0 }) : "–");

  const percent = (x) => (typeof x === "number" ? `${(x * 100).toLocaleString("en-US", { maximumFractionDigits: 1 })}%` : "–");

  // "2026-12-02T10:00:00Z" -> "2 Dec 2026, 10:00 UTC".
  const when = (text) => {
    if (!text) return "–";
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) return text;
    return date.toLocaleString("en-GB", {
      day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
    }) + " UTC";
  };

  const day = (text) => (text ? when(text).replace(/, \d\d:\d\d UTC$/, "") : "–");

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // Rows of [label, value] into a tbody ("none" when there are none).
  function rows(tbody, entries, show = fmt) {
    if (entries.length === 0) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 2, class: "none", text: "none" })));
      return;
    }
    tbody.replaceChildren(...entries.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: show(v) }))));
  }

  // The token of this page: from the URL fragment first, else the tab's storage.
  function token(key) {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      history.replaceState(null, "", location.pathname + location.search);
      try {
        if (match[1]) sessionStorage.setItem(key, decodeURIComponent(match[1]));
      } catch {
        // A mangled link: sign in by hand.
      }
    }
    return sessionStorage.getItem(key);
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body.message || `HTTP ${status}`);
      this.status = status;
      this.code = body.code;
    }
  }

  // Calls the API with the page's token; resolves to the JSON body or
  // rejects with an ApiError carrying status and code.
  async function api(key, method, path, body) {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem(key) || ""}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const parsed = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }

  // Wires a sign-in form (#login with #token, #login-error) and a sign-out
  // button (#signout) to `start(token)`, which shows the page.
  let pageKey = null;

  function signIn(key, start) {
    pageKey = key;
    const form = $("login");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      $("token").value = "";
      sessionStorage.setItem(key, value);
      $("login-error").textContent = "";
      start(value);
    });
    const signout = $("signout");
    if (signout) {
      signout.addEventListener("click", () => {
        sessionStorage.removeItem(key);
        location.reload();
      });
    }
    const saved = token(key);
    if (saved) start(saved);
  }

  // Shows the sign-in form again with an error; a refused token (401, 403)
  // is forgotten, one that met a network error is kept for a retry.
  function signInFailed(error) {
    if (pageKey && (error.status === 401 || error.status === 403)) sessionStorage.removeItem(pageKey);
    $("login").hidden = false;
    $("login-error").textContent = `Could not sign in: ${error.message}`;
  }

  return { $, fmt, percent, when, day, el, rows, token, api, signIn, signInFailed, ApiError };
})();
