// The abuse review queue at /review (role reviewer): the open items show
// their rule and evidence; a ban (by keyboard) and a clear (by mouse), each
// with a note, change the subject's status in the API and are recorded
// with the note. Run by tests/browser.rs, which has put REVIEW_BAN and
// REVIEW_CLEAR (subject ids) in review.

import { api, assert, assertEqual, checkAccessibility, BASE, log, main, newPage, shot, TOKENS, waitFor } from "./lib.mjs";

const TO_BAN = process.env.REVIEW_BAN;
const TO_CLEAR = process.env.REVIEW_CLEAR;

async function status(subject) {
  const response = await api("GET", `/v1/abuse/subjects/${subject}`, TOKENS.reviewer);
  assertEqual(response.status, 200, `GET /v1/abuse/subjects/${subject}`);
  return response.body;
}

await main("review", async () => {
  assert(TO_BAN && TO_CLEAR, "REVIEW_BAN and REVIEW_CLEAR are set");
  assertEqual((await status(TO_BAN)).status, "review", "the first subject starts in review");
  assertEqual((await status(TO_CLEAR)).status, "review", "the second subject starts in review");

  const page = await newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${BASE}/review`);
  await page.waitForSelector("#login", { state: "visible" });
  await checkAccessibility(page, "the review queue's sign-in form");
  await page.getByLabel("Reviewer or admin token").fill(TOKENS.reviewer);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#queue", { state: "visible" });
  await waitFor(async () => (await page.locator("#items > li").count()) === 2, 5_000, "two open items");
  const banItem = page.locator(`#queue li[data-subject="${TO_BAN}"]`);
  const text = await banItem.textContent();
  assert(text.includes("sent to review by a flag from partner friendnet (spam)"), `the item names what sent it: ${text}`);
  // The history opens on demand, with the partner the account is linked to.
  await banItem.getByText("History and linked partners").click();
  await waitFor(async () => ((await banItem.locator(".history").textContent()) || "").includes("Linked to: friendnet"), 5_000, "the history");
  assert(((await banItem.locator(".history li").first().textContent()) || "").includes("review by a flag from partner friendnet"), "the flag is in the history");
  await shot(page, "review-queue.png");
  await checkAccessibility(page, "the review queue with its history open");

  // Ban by keyboard: type the note, Tab to "Ban", press Enter.
  await banItem.getByLabel(/^Note/).fill("spam wave confirmed by the partner");
  await page.keyboard.press("Tab");
  assertEqual(await page.evaluate(() => document.activeElement?.textContent), "Ban", "Tab from the note reaches Ban");
  await page.keyboard.press("Enter");
  await waitFor(async () => ((await banItem.locator(".outcome").textContent()) || "").startsWith("Recorded: banned"), 5_000, "the ban to be recorded");
  const banned = await status(TO_BAN);
  assertEqual(banned.status, "banned", "the API shows the subject banned");
  assertEqual(banned.history[banned.history.length - 1].note, "spam wave confirmed by the partner", "the note is kept");
  assertEqual(banned.history[banned.history.length - 1].origin, "reviewer", "the decision is the reviewer's");
  assertEqual(await page.locator("#decided > li").count(), 1, "the item moved to decided");

  // Clear by mouse.
  const clearItem = page.locator(`#queue li[data-subject="${TO_CLEAR}"]`);
  await clearItem.getByLabel(/^Note/).fill("false positive: a shop's announcement list");
  await clearItem.getByRole("button", { name: "Clear" }).click();
  await waitFor(async () => ((await clearItem.locator(".outcome").textContent()) || "").startsWith("Recorded: clear"), 5_000, "the clear to be recorded");
  assertEqual((await status(TO_CLEAR)).status, "clear", "the API shows the subject cleared");
  await shot(page, "review-decided.png");

  // A fresh load: nothing open any more.
  await page.click("#refresh");
  await waitFor(async () => ((await page.textContent("#queue-status")) || "").includes("Nothing to review"), 5_000, "an empty queue");
  assertEqual(await page.locator("#items > li").count(), 0, "no open items");
  log("ban and clear recorded");
});
