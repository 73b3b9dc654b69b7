// proviso dashboard: reads GET /v1/live (server-sent events) with the
// analyst's token. Aggregates only: nothing here names a person.
"use strict";

(() => {
  const { $, fmt, percent, rows } = Proviso;
  const KEY = "proviso-dashboard-token";

  const pulse = [[], [], []];
  let pulseChart = null;
  let abuseChart = null;

  const width = (id) => Math.max(Math.min($(id).clientWidth || 320, 1060), 260);

  function charts() {
    pulseChart = new uPlot({
      width: width("chart"), height: 220,
      series: [{}, { label: "events/s", stroke: "#2563eb" }, { label: "DAU", stroke: "#16a34a", scale: "dau" }],
      axes: [{}, { size: 64 }, { scale: "dau", side: 1, size: 64 }],
    }, pulse, $("chart"));
    abuseChart = new uPlot({
      width: width("abuse-chart"), height: 220,
      series: [{},
        { label: "banned", stroke: "#b91c1c", fill: "#b91c1c22" },
        { label: "review", stroke: "#d97706", fill: "#d9770622" },
        { label: "cleared", stroke: "#0f766e" }],
      axes: [{}, { size: 48 }],
    }, [[], [], [], []], $("abuse-chart"));
    window.addEventListener("resize", () => {
      pulseChart.setSize({ width: width("chart"), height: 220 });
      abuseChart.setSize({ width: width("abuse-chart"), height: 220 });
    });
  }

  function show(f) {
    $("dau").textContent = fmt(f.dau);
    $("wau").textContent = fmt(f.wau);
    $("mau").textContent = fmt(f.mau);
    $("eps").textContent = fmt(f.events_per_second);
    $("subjects").textContent = fmt(f.subjects);
    $("day").textContent = f.day || "–";
    $("status").textContent = `live · updated ${new Date().toLocaleTimeString("en-GB")}`;
    rows($("messages"), Object.entries(f.messages || {}));
    rows($("abuse"), Object.entries(f.abuse || {}));
    const refusals = [];
    for (const [purpose, byRegion] of Object.entries(f.refusal_rates || {})) {
      for (const [region, rate] of Object.entries(byRegion)) {
        const refused = (f.refusals?.[purpose] || {})[region] || 0;
        refusals.push([`${purpose} · ${region}`, `${percent(rate)} (${fmt(refused)} of ${fmt(f.subjects_by_region?.[region])})`]);
      }
    }
    rows($("refusals"), refusals, String);
    rows($("rejected"), Object.entries(f.rejected || {}));
    rows($("disclosures"), Object.entries(f.disclosures || {}));
    pulse[0].push(Date.now() / 1000); pulse[1].push(f.events_per_second); pulse[2].push(f.dau);
    if (pulse[0].length > 300) pulse.forEach((s) => s.shift());
    pulseChart.setData(pulse);
    const days = f.abuse_actions || [];
    abuseChart.setData([
      days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000),
      days.map((d) => d.banned), days.map((d) => d.review), days.map((d) => d.clear),
    ]);
  }

  // No update for this long: the stream is stalled; reconnect.
  const STALL_MS = 10_000;
  // Bumped by every sign-in: older connection loops stop.
  let session = 0;

  // One connection to the stream; returns when the server ends it or a
  // newer sign-in replaces it, throws on errors and stalls.
  async function stream(token, mine) {
    const controller = new AbortController();
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(new Error(`no update for ${STALL_MS / 1000} s`)), STALL_MS);
    };
    arm();
    try {
      const response = await fetch("/v1/live?interval_ms=1000", {
        headers: { Authorization: `Bearer ${token}` }, signal: controller.signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Proviso.ApiError(response.status, body);
      }
      $("login").hidden = true;
      $("board").hidden = false;
      if (!pulseChart) charts();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || mine !== session) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split("\n");
          const name = (lines.find((l) => l.startsWith("event:")) || "event:message").slice(6).trim();
          const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("");
          if (name === "figures" && data) {
            arm();
            show(JSON.parse(data));
          }
        }
      }
    } finally {
      clearTimeout(watchdog);
      controller.abort();
    }
  }

  // Keeps the stream open: reconnects (1 s, 2 s, … up to 10 s apart) when
  // the server ends it, the network drops or it stalls. A refused token, or
  // a first connection that fails, brings back the sign-in form.
  async function connect(token) {
    const mine = ++session;
    for (let attempt = 0; mine === session; attempt++) {
      try {
        await stream(token, mine);
        if (mine !== session) return;
        attempt = 0;
        $("status").textContent = "the server closed the stream; reconnecting…";
      } catch (error) {
        if (mine !== session) return;
        if (error.status === 401 || error.status === 403 || $("board").hidden) {
          $("board").hidden = true;
          Proviso.signInFailed(error);
          return;
        }
        $("status").textContent = `connection lost (${error.message}); reconnecting…`;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** attempt, 10_000)));
    }
  }

  Proviso.signIn(KEY, connect);
})();
