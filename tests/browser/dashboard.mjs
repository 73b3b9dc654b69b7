// The dashboard at `/`: sign in with the analyst token, the DAU shown equals
// the metrics API's, and it moves to the API's new value within 2 s of new
// events being acknowledged. Run by tests/browser.rs, which has ingested
// events first (EXPECT_DAY and EXPECT_DAU, when set, are its own count).

import { api, assert, assertEqual, checkAccessibility, BASE, log, main, newPage, numberIn, shot, TOKENS, waitFor } from "./lib.mjs";

/** Signs in on `page` (at `/`, sign-in form shown) and waits until the figures are shown. */
async function signIn(page, token) {
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#board", { state: "visible" });
  return waitFor(() => numberIn(page, "#dau").then((n) => n !== null && n > 0 && n), 5_000, "#dau to show a number");
}

/** The API's DAU for `day`. */
async function apiDau(day) {
  const response = await api("GET", `/v1/metrics/active?from=${day}&to=${day}&window=1`, TOKENS.analyst);
  assertEqual(response.status, 200, `GET /v1/metrics/active status (${JSON.stringify(response.body)})`);
  const active = response.body?.series?.[0]?.active;
  assert(Number.isInteger(active), `series[0].active is an integer in ${JSON.stringify(response.body)}`);
  return active;
}

await main("dashboard", async () => {
  const page = await newPage({ viewport: { width: 1280, height: 900 } });

  // A wrong token is refused on the page, with the form still there.
  await page.goto(`${BASE}/`);
  await page.waitForSelector("#login", { state: "visible" });
  await checkAccessibility(page, "the dashboard's sign-in form");
  assert(await page.isVisible("#login"), "the sign-in form is shown first");
  assert(await page.isHidden("#board"), "the board is hidden before sign-in");
  await page.fill("#token", "not-a-token");
  await page.click("#login button[type=submit]");
  await waitFor(async () => ((await page.textContent("#login-error")) || "").trim(), 5_000, "#login-error to explain a wrong token");
  assert(await page.isHidden("#board"), "the board stays hidden after a wrong token");

  // Then the right one, in the same form.
  const shown = await signIn(page, TOKENS.analyst);
  const day = ((await page.textContent("#day")) || "").trim();
  assert(/^\d{4}-\d{2}-\d{2}$/.test(day), `#day shows a date, got ${JSON.stringify(day)}`);
  log(`signed in: day ${day}, DAU ${shown}`);
  if (process.env.EXPECT_DAY) assertEqual(day, process.env.EXPECT_DAY, "#day is the latest day with activity");

  // The page's DAU equals the API's for that day (the stream ticks every
  // second; allow one tick for a figure read just before the API call).
  const before = await apiDau(day);
  await waitFor(async () => (await numberIn(page, "#dau")) === before, 2_500, `#dau to equal the API's DAU ${before}`);
  if (process.env.EXPECT_DAU) assertEqual(before, Number(process.env.EXPECT_DAU), "the API's DAU is the ingested count");
  for (const id of ["#wau", "#mau", "#subjects", "#eps"]) {
    assert((await numberIn(page, id)) !== null, `${id} shows a number, got ${JSON.stringify(await page.textContent(id))}`);
  }
  assert((await numberIn(page, "#wau")) >= before && (await numberIn(page, "#mau")) >= (await numberIn(page, "#wau")), "DAU <= WAU <= MAU");

  // Five new subjects active on that day.
  const lines = [0, 1, 2, 3, 4].map((k) =>
    JSON.stringify({ type: "session", ts: `${day}T12:00:00Z`, phone: `+1 202 555 010${k}`, device: "d1" }),
  );
  const posted = await api("POST", "/v1/events", TOKENS.ingest, lines.join("\n"));
  const acknowledged = Date.now();
  assertEqual(posted.status, 200, `POST /v1/events status (${JSON.stringify(posted.body)})`);
  assertEqual(posted.body.accepted, 5, `accepted lines (${JSON.stringify(posted.body)})`);
  log(`posted 5 sessions on ${day} in ${posted.ms} ms`);

  const expected = await waitFor(async () => {
    const now = await apiDau(day);
    return now === before + 5 && now;
  }, 2_000, `the API's DAU to become ${before} + 5`);
  let last = null;
  await waitFor(async () => {
    last = await numberIn(page, "#dau");
    return last === expected;
  }, Math.max(0, 2_000 - (Date.now() - acknowledged)), `#dau to become ${expected} (API) within 2000 ms of the POST's acknowledgement`).catch((error) => {
    throw new Error(`${error.message}; #dau still shows ${last}`);
  });
  const moved = Date.now() - acknowledged;
  assert(moved <= 2_000, `#dau moved ${moved} ms after the acknowledgement (limit 2000 ms)`);
  log(`#dau ${before} -> ${expected} shown ${moved} ms after the POST was acknowledged`);
  await shot(page, "dashboard-desktop.png");

  // The same board on a phone, in its own tab (the token lives in sessionStorage).
  const phone = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await phone.goto(`${BASE}/`);
  const onPhone = await signIn(phone, TOKENS.analyst);
  assertEqual(onPhone, expected, "the phone shows the same DAU");
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  log(`phone: horizontal overflow ${overflow} px`);
  await shot(phone, "dashboard-phone.png");
  assert(overflow <= 0, `the phone page scrolls sideways by ${overflow} px`);

  // Checked last so that the screenshots above exist when it fails.
  for (const [name, p] of [["desktop", page], ["phone", phone]]) {
    assert(await p.isHidden("#login"), `the sign-in form is hidden once signed in (${name}); a CSS display rule overriding [hidden]?`);
  }
});
