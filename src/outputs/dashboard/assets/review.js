// The abuse review queue (role reviewer): actions that put an account in
// review and that nobody has decided yet, with the rule and its evidence;
// a reviewer bans or clears with a note, and the recorded outcome is read
// back from the API.
"use strict";

(() => {
  const { $, el, fmt, when } = Proviso;
  const KEY = "proviso-review-token";
  const api = (method, path, body) => Proviso.api(KEY, method, path, body);
  const PAGE = 50;

  let open = [];
  // Open items on the page now (a prefix of `open`).
  const shown = () => $("items").children.length;

  function origin(action) {
    if (action.origin === "rule") return `rule ${action.by}`;
    if (action.origin === "partner_flag") return `a flag from partner ${action.by} (${action.note})`;
    return "a reviewer";
  }

  // The subject's whole abuse history and linked partners, fetched when a
  // reviewer opens it.
  function history(subject) {
    const body = el("div", { class: "history" }, el("p", { text: "loading…" }));
    const details = el("details", {}, el("summary", { text: "History and linked partners" }), body);
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      try {
        const view = await api("GET", `/v1/abuse/subjects/${subject}`);
        details.dataset.loaded = "1";
        body.replaceChildren(
          el("p", { text: `Linked to: ${view.partners.length ? view.partners.join(", ") : "no partner"} · events while banned: ${fmt(view.events_while_banned)}` }),
          el("ol", {}, view.history.map((a) => el("li", {
            text: `${when(a.at)} — ${a.status} by ${origin(a)}: ${a.reason}${a.note && a.origin === "reviewer" ? ` (“${a.note}”)` : ""}`,
          }))));
      } catch (error) {
        body.replaceChildren(el("p", { text: `Could not load: ${error.message}` }));
      }
    });
    return details;
  }

  function item(action) {
    const id = `item-${action.id}`;
    const evidence = Object.entries(action.evidence);
    const note = el("textarea", { id: `${id}-note`, rows: 2, maxlength: 500 });
    const outcome = el("p", { class: "outcome", role: "status", id: `${id}-outcome` });
    const decide = (verdict) => async () => {
      const buttons = [...node.querySelectorAll(".decide button")];
      for (const button of buttons) button.disabled = true;
      let after;
      try {
        // The answer is the subject as recorded: no second request that
        // could fail after the decision is made.
        after = await api("POST", `/v1/abuse/subjects/${action.subject}/decision`, { action: verdict, note: note.value });
      } catch (error) {
        outcome.textContent = `Could not record: ${error.message}`;
        for (const button of buttons) button.disabled = false;
        return;
      }
      const last = after.history[after.history.length - 1];
      open = open.filter((a) => a.subject !== action.subject);
      $("decided").prepend(node);
      node.querySelector(".decide").remove();
      node.dataset.status = after.status;
      outcome.textContent = `Recorded: ${after.status} since ${when(after.since || last?.at)}${last?.note ? ` — “${last.note}”` : ""}`
        + (after.partners.length ? `; shared with ${after.partners.join(", ")}` : "");
      // Focus moves to the next open item (or the queue's heading).
      const next = $("items").querySelector("li h3") || $("queue-title");
      next.focus();
      count();
    };
    const node = el("li", { class: "item", id, "data-subject": action.subject, "aria-labelledby": `${id}-title` },
      el("h3", { id: `${id}-title`, tabindex: -1 }, el("code", { text: action.subject })),
      el("p", { text: `${action.reason} · sent to review by ${origin(action)} · ${when(action.at)}${action.shared ? " · shared with linked partners" : ""}` }),
      evidence.length
        ? el("table", { class: "evidence" }, el("caption", { text: "Evidence" }),
          el("tbody", {}, evidence.map(([feature, value]) => el("tr", {}, el("td", {}, el("code", { text: feature })), el("td", { text: fmt(value) })))))
        : null,
      (action.domains || []).length
        ? el("table", { class: "evidence domains" }, el("caption", { text: "Suspicious link domains (derived by proviso)" }),
          el("thead", {}, el("tr", {}, ["domain", "suspicious since", "first seen", "young senders", "strangers reached"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, action.domains.map((d) => el("tr", {},
            el("td", {}, el("code", { text: d.domain })),
            el("td", { text: when(d.suspicious_since) }),
            el("td", { text: when(d.first_seen) }),
            el("td", {}, el("span", { text: `${fmt(d.young_senders)}: ` }),
              ...d.young_sender_subjects.map((s) => el("code", { text: `${s} ` }))),
            el("td", { text: fmt(d.stranger_recipients) })))))
        : null,
      history(action.subject),
      el("div", { class: "decide" },
        el("label", { for: `${id}-note`, text: "Note (why; never paste message content)" }),
        note,
        el("div", { class: "actions" },
          el("button", { type: "button", class: "danger", "data-action": "ban", onclick: decide("ban"), text: "Ban" }),
          el("button", { type: "button", "data-action": "clear", onclick: decide("clear"), text: "Clear" }))),
      outcome);
    return node;
  }

  function count() {
    $("queue-status").textContent = open.length
      ? `${fmt(open.length)} open item${open.length === 1 ? "" : "s"}, oldest first.`
      : "Nothing to review.";
    $("more").hidden = shown() >= open.length;
  }

  function showMore() {
    $("items").append(...open.slice(shown(), shown() + PAGE).map(item));
    count();
  }

  // The open queue: each subject still in review, with the action that put
  // it there (`open=true`), paged.
  async function load() {
    $("queue-status").textContent = "loading…";
    const found = [];
    let after;
    for (let page = 0; page < 100; page++) {
      const query = `status=review&open=true&limit=1000${after === undefined ? "" : `&after=${after}`}`;
      const result = await api("GET", `/v1/abuse/actions?${query}`);
      found.push(...result.actions);
      if (result.next === null || result.next === undefined || result.actions.length === 0) break;
      after = result.next;
    }
    // One item per subject (a subject that got a new review action between
    // two pages would otherwise show twice).
    open = [...new Map(found.map((action) => [action.subject, action])).values()];
    $("items").replaceChildren();
    showMore();
  }

  $("more").addEventListener("click", showMore);
  $("refresh").addEventListener("click", () => load().catch((error) => { $("queue-status").textContent = error.message; }));

  Proviso.signIn(KEY, () => {
    load().then(() => {
      $("login").hidden = true;
      $("queue").hidden = false;
    }).catch((error) => {
      $("queue").hidden = true;
      Proviso.signInFailed(error);
    });
  });
  if (!sessionStorage.getItem(KEY)) $("login").hidden = false;
})();
