// The privacy center: one person's view, through the subject-service role.
// It reads the same report as GET /v1/subjects/{s}/report and changes only
// that person's own choices. The number typed stays in the page: it is sent
// once to /v1/subjects/resolve and never shown back.
"use strict";

(() => {
  const { $, el, fmt, when, day } = Proviso;
  const KEY = "proviso-privacy-token";
  const api = (method, path, body) => Proviso.api(KEY, method, path, body);

  const PURPOSES = {
    service: ["Running the service", "Delivering your messages and keeping your account working."],
    security: ["Safety", "Fighting spam and abuse on both services: an account caught abusing one is actioned on the other. Shared only with partners where you have an account, and never your number."],
    analytics: ["Counting", "How many people use the service and how, in totals only; never about you alone."],
    product: ["Friend suggestions", "Suggesting your contacts who are on the partner network but not yet your friends there."],
    ads: ["More relevant ads", "Ads on the partner network, e.g. from businesses you already message. Advertisers see only rounded audience sizes, never your number or who you are."],
  };
  // Disclosures listed on the page (the download has every one).
  const SHOWN = 100;
  // The two choices first, then what is always on.
  const ORDER = ["product", "ads", "security", "analytics", "service"];
  const KINDS = {
    security_feed: "a safety action about your account",
    suggestions: "you as a friend suggestion",
    audience_members: "membership of an ad audience",
    product_feed: "you as a friend suggestion",
    ads_feed: "membership of an ad audience",
  };

  let subject = null;
  let report = null;
  // Bumped by every lookup and "look up another": a late answer about an
  // earlier person is dropped instead of shown.
  let generation = 0;

  function show(id) {
    for (const section of ["login", "lookup", "person", "erased"]) $(section).hidden = section !== id;
  }

  function stateText(name, view) {
    if (view.basis === "essential") return "Always on";
    if (view.state === "granted") return view.basis === "consent_granted" ? `On — you turned it on ${when(view.since)}` : "On";
    if (view.state === "denied") {
      return view.basis === "consent_refused" ? `Off — you turned it off ${when(view.since)}` : "Off until you turn it on";
    }
    return `Not yet shared: sharing for ${PURPOSES[name][0].toLowerCase()} begins ${day(view.until)} unless you turn it off`;
  }

  function purposeItem(name, view) {
    const [title, text] = PURPOSES[name] || [name, ""];
    const id = `toggle-${name}`;
    const item = el("li", { class: "purpose" },
      el("div", {},
        el("strong", { id: `${id}-label`, text: title }),
        el("p", { text }),
        view.refusable ? el("p", { class: "state", id: `state-${name}`, text: stateText(name, view) }) : null));
    if (view.refusable) {
      const on = view.state !== "denied";
      const toggle = el("button", {
        id, type: "button", role: "switch", class: "switch", "aria-checked": String(on), "aria-labelledby": `${id}-label`,
        "aria-describedby": `state-${name}`,
        "data-purpose": name,
        onclick: () => choose(name, !on, toggle),
      }, el("span", { text: on ? "On" : "Off" }));
      item.append(toggle);
    } else {
      item.append(el("span", { class: "always", text: "Always on" }));
    }
    return item;
  }

  function render() {
    const held = report.held;
    $("person-status").textContent = `Shown ${when(report.generated_at)}. Your region: ${report.region}.`;
    const purposes = Object.entries(report.consent.purposes)
      .sort(([a], [b]) => ORDER.indexOf(a) - ORDER.indexOf(b));
    $("purposes").replaceChildren(...purposes.map(([name, view]) => purposeItem(name, view)));
    const facts = [
      ["First seen", when(held.first_seen)],
      ["Days you used the app", `${fmt(held.active_days.count)}${held.active_days.first ? ` (from ${held.active_days.first} to ${held.active_days.last})` : ""}`],
      ["Platform", held.platform],
      ["Contacts in your address book", `${fmt(held.address_book_contacts)} (as a count; their numbers are never shown)`],
      ["Address books you are in", fmt(held.in_address_books)],
      ["Businesses you message", Object.keys(held.businesses).length
        ? Object.entries(held.businesses).map(([b, days]) => `${b} (${days} day${days === 1 ? "" : "s"})`).join(", ") : "none"],
      ["Message content", "never — proviso refuses it at the door"],
    ];
    $("held").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    $("partners").textContent = report.partners.length
      ? `You have an account on: ${report.partners.map((p) => p.partner).join(", ")}.`
      : "You have no partner account: nothing about you is shared with a partner.";
    const disclosures = [...report.disclosures].reverse();
    const recipients = new Set(disclosures.map((d) => d.recipient.replace(/^partner:/, "")));
    $("disclosure-summary").textContent = disclosures.length
      ? `${fmt(disclosures.length)} disclosure${disclosures.length === 1 ? "" : "s"} to ${[...recipients].join(", ")}. Each was checked against your choices at that moment.`
        + (disclosures.length > SHOWN ? ` The latest ${SHOWN} are below; the downloaded report has all of them.` : "")
      : "Nothing about you has been shared with anyone.";
    $("disclosure-table").hidden = disclosures.length === 0;
    $("disclosures").replaceChildren(...disclosures.slice(0, SHOWN).map((d) => el("tr", {},
      el("td", { text: when(d.at) }),
      el("td", { text: d.recipient.replace(/^partner:/, "") }),
      el("td", { text: (PURPOSES[d.purpose] || [d.purpose])[0] }),
      el("td", { text: KINDS[d.kind] || d.kind }))));
    const status = report.abuse.status;
    $("safety").textContent = status === "clear"
      ? (report.abuse.actions.length ? "Your account is in good standing (an earlier check was cleared)." : "Your account is in good standing.")
      : status === "banned" ? "Your account was suspended for abuse. Partners where you have an account were told." : "Your account is being reviewed by our safety team.";
  }

  // Loads and shows the current person's report; false when a newer lookup
  // made the answer stale.
  async function load() {
    const mine = generation;
    const fresh = await api("GET", `/v1/subjects/${subject}/report`);
    if (mine !== generation) return false;
    report = fresh;
    render();
    show("person");
    return true;
  }

  async function choose(purpose, granted, toggle) {
    // One change at a time: the report shown is always the latest.
    for (const button of document.querySelectorAll(".switch")) button.disabled = true;
    try {
      await api("PUT", `/v1/subjects/${subject}/consent/${purpose}`, { granted });
      if (!(await load())) return;
      $("person-status").textContent = `${PURPOSES[purpose][0]} is now ${granted ? "on" : "off"}.`;
    } catch (error) {
      $("person-status").textContent = `Could not change it: ${error.message}`;
      for (const button of document.querySelectorAll(".switch")) button.disabled = false;
    }
    $(`toggle-${purpose}`)?.focus();
  }

  $("lookup").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("lookup-error").textContent = "";
    const country = $("country").value.trim().toUpperCase();
    const mine = ++generation;
    try {
      const resolved = await api("POST", "/v1/subjects/resolve", { phone: $("phone").value, ...(country ? { country } : {}) });
      if (mine !== generation) return;
      subject = resolved.subject;
      if (!(await load())) return;
      $("phone").value = "";
      $("person-title").focus();
    } catch (error) {
      if (mine !== generation) return;
      if (error.status === 401 || error.status === 403) {
        show("login");
        return Proviso.signInFailed(error);
      }
      $("lookup-error").textContent = error.status === 404
        ? "Nothing is held about this number: it was never seen, or it was erased."
        : error.message;
    }
  });

  $("another").addEventListener("click", () => {
    generation++;
    subject = null;
    report = null;
    show("lookup");
    $("phone").focus();
  });
  $("erased-again").addEventListener("click", () => { show("lookup"); $("phone").focus(); });

  $("download").addEventListener("click", () => {
    const blob = new Blob([JSON.stringify(report, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `proviso-report-${report.subject}.json` });
    document.body.append(link);
    link.click();
    link.remove();
  });

  $("erase").addEventListener("click", () => { $("confirm").hidden = false; $("cancel-erase").focus(); });
  $("cancel-erase").addEventListener("click", () => { $("confirm").hidden = true; $("erase").focus(); });
  $("confirm-erase").addEventListener("click", async () => {
    $("confirm-erase").disabled = true;
    try {
      const result = await api("POST", `/v1/subjects/${subject}/erase`);
      $("confirm").hidden = true;
      $("erased-text").textContent = result.compacted
        ? "Everything about you is gone, and partners were told to delete what they received."
        : "Everything about you is gone from every view and output now, partners were told to delete what they received, and the last copies in the event log are removed shortly (within the bound the operator set: an hour by default).";
      subject = null;
      report = null;
      show("erased");
      $("erased-title").focus();
    } catch (error) {
      $("person-status").textContent = `Could not erase: ${error.message}`;
    } finally {
      $("confirm-erase").disabled = false;
    }
  });

  for (const id of ["person-title", "erased-title"]) $(id).tabIndex = -1;

  // A wrong token shows at the first lookup (401/403 bring the form back).
  Proviso.signIn(KEY, () => show("lookup"));
  if (!sessionStorage.getItem(KEY)) show("login");
})();
