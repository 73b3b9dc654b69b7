// `proviso demo`'s three pages, opened from the links it prints: each is
// populated from the simulator, and each is saved as a screenshot at
// desktop and phone width. Run by tests/browser.rs against a real demo;
// with PROVISO_ARTIFACTS=docs/screenshots it regenerates the README's
// screenshots.
//
// Environment: PROVISO_BASE, DEMO_DASHBOARD, DEMO_PRIVACY, DEMO_REVIEW (the
// printed links, tokens in the fragment) and DEMO_NUMBER (one of the
// simulated numbers it suggests); DEMO_SETTLE_MS, how long the dashboard
// runs before its screenshot (default 2500). tests/browser/screenshots.sh runs it
// against `proviso demo` to regenerate docs/screenshots/.

import { assert, checkAccessibility, log, main, newPage, numberIn, shot, waitFor } from "./lib.mjs";

function required(name) {
  const value = process.env[name];
  assert(value, `environment variable ${name} is set`);
  return value;
}

const SIZES = [
  ["desktop", { width: 1280, height: 900 }],
  ["phone", { width: 390, height: 844 }],
];

await main("demo", async () => {
  for (const [size, viewport] of SIZES) {
    const phone = size === "phone";

    // The dashboard signs in from the link's fragment and moves.
    const dashboard = await newPage({ viewport, isMobile: phone, hasTouch: phone });
    await dashboard.goto(required("DEMO_DASHBOARD"));
    await dashboard.waitForSelector("#board", { state: "visible" });
    const first = await waitFor(async () => (await numberIn(dashboard, "#dau")) || null, 10_000, "a DAU above zero");
    assert(!dashboard.url().includes("token="), "the token is taken out of the address bar");
    if (size === "desktop") {
      // The simulator is still streaming (the desktop pass comes first):
      // the figures move without a reload.
      const people = await numberIn(dashboard, "#subjects");
      await waitFor(async () => (await numberIn(dashboard, "#subjects")) > people, 5_000, `people to grow past ${people}`);
    }
    await waitFor(async () => (await dashboard.locator("#messages tr").count()) > 0, 5_000, "messages by kind");
    log(`${size}: dashboard DAU ${first}`);
    // A few points on the live chart (longer with DEMO_SETTLE_MS for the docs).
    await dashboard.waitForTimeout(Number(process.env.DEMO_SETTLE_MS || 2_500));
    await shot(dashboard, `dashboard-${size}.png`);
    await checkAccessibility(dashboard, `the dashboard at ${size} width`);

    // The privacy center finds a simulated person by number.
    const privacy = await newPage({ viewport, isMobile: phone, hasTouch: phone });
    await privacy.goto(required("DEMO_PRIVACY"));
    await privacy.waitForSelector("#lookup", { state: "visible" });
    assert(!privacy.url().includes("token="), "the privacy center takes the token out of the address bar");
    await privacy.fill("#phone", required("DEMO_NUMBER"));
    await privacy.click("#lookup button[type=submit]");
    await privacy.waitForSelector("#person", { state: "visible" });
    assert((await privacy.locator("#purposes li").count()) === 5, "five purposes listed");
    assert(await privacy.isVisible("#toggle-ads"), "an ads toggle");
    const held = await privacy.textContent("#held");
    assert(/Days you used the app/.test(held) && !held.includes(required("DEMO_NUMBER")), "what is held, without the number");
    await shot(privacy, `privacy-${size}.png`);
    await checkAccessibility(privacy, `the privacy center at ${size} width`);

    // The review queue has open items with their evidence.
    const review = await newPage({ viewport, isMobile: phone, hasTouch: phone });
    await review.goto(required("DEMO_REVIEW"));
    await review.waitForSelector("#queue", { state: "visible" });
    assert(!review.url().includes("token="), "the review queue takes the token out of the address bar");
    let refreshed = Date.now();
    const items = await waitFor(async () => {
      const count = await review.locator("#items > li").count();
      if (count === 0 && Date.now() - refreshed > 2_000) {
        refreshed = Date.now();
        await review.click("#refresh");
      }
      return count;
    }, 30_000, "an open review item");
    log(`${size}: ${items} review items shown`);
    await shot(review, `review-${size}.png`);
    await checkAccessibility(review, `the review queue at ${size} width`);

    // Nothing wider than the window (no sideways scrolling on a phone).
    for (const page of [dashboard, privacy, review]) {
      const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      assert(scroll <= inner, `${page.url()} at ${size} width: content ${scroll}px wide in a ${inner}px window`);
    }
  }
});
