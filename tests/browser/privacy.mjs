// The privacy center at /privacy, through the subject-service role: a
// person looks up their number, turns ads off (the API shows ads denied and
// the person gone from the partner's ads audience), downloads their report,
// and erases everything after a confirmation step (the report is then 404).
// Run by tests/browser.rs, which has set up PRIVACY_NUMBER (linked to
// friendnet as PRIVACY_PARTNER_ID, messaging business PRIVACY_BUSINESS with
// ads allowed, in an audience of at least k people).

import fs from "node:fs";
import { api, assert, assertEqual, checkAccessibility, BASE, log, main, newPage, shot, TOKENS, waitFor } from "./lib.mjs";

const NUMBER = process.env.PRIVACY_NUMBER;
const PARTNER_ID = process.env.PRIVACY_PARTNER_ID;
const BUSINESS = process.env.PRIVACY_BUSINESS;

async function audienceMembers() {
  const response = await api("GET", `/v1/partners/friendnet/audiences/${BUSINESS}?days=30`, TOKENS.partner);
  assertEqual(response.status, 200, `partner audience status (${JSON.stringify(response.body)})`);
  assertEqual(response.body.suppressed, false, "the audience is large enough to be released");
  return response.body.members;
}

await main("privacy", async () => {
  assert(NUMBER && PARTNER_ID && BUSINESS, "PRIVACY_NUMBER, PRIVACY_PARTNER_ID and PRIVACY_BUSINESS are set");
  const resolved = await api("POST", "/v1/subjects/resolve", TOKENS.subject, { phone: NUMBER });
  assertEqual(resolved.status, 200, "the person is known");
  const subject = resolved.body.subject;
  assert((await audienceMembers()).includes(PARTNER_ID), "the person is in the ads audience before");

  const page = await newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });

  // A wrong token: the first lookup brings back the connect form.
  await page.goto(`${BASE}/privacy#token=not-a-valid-token`);
  await page.fill("#phone", NUMBER);
  await page.click("#lookup button[type=submit]");
  await page.waitForSelector("#login", { state: "visible" });
  await checkAccessibility(page, "the privacy center's connect form");
  assert(((await page.textContent("#login-error")) || "").includes("Could not sign in"), "a wrong token is explained");

  // The right token, typed in the labelled field.
  await page.getByLabel("Subject-service token").fill(TOKENS.subject);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.waitForSelector("#lookup", { state: "visible" });
  await checkAccessibility(page, "the privacy center's lookup form");

  // An unknown number: nothing held, said plainly.
  await page.getByLabel("Your phone number").fill("+91 98766 99999");
  await page.keyboard.press("Enter");
  await waitFor(async () => ((await page.textContent("#lookup-error")) || "").includes("Nothing is held"), 5_000, "the not-found message");

  // The person's own number, by keyboard.
  await page.getByLabel("Your phone number").fill(NUMBER);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#person", { state: "visible" });
  const body = await page.textContent("body");
  assert(!body.includes(NUMBER) && !body.includes(NUMBER.replace(/\D/g, "")), "the number is not shown back");
  assert(body.includes("friendnet"), "the partner account is listed");
  assert(body.includes(BUSINESS), "the business they message is listed");
  assertEqual(await page.getAttribute("#toggle-ads", "aria-checked"), "true", "ads start on");
  assert(((await page.textContent("#disclosure-summary")) || "").includes("friendnet"), "disclosures to the partner are summed up");
  assert(((await page.textContent("#disclosures")) || "").includes("ad audience"), "the audience disclosure is listed");
  await shot(page, "privacy-person.png");
  await checkAccessibility(page, "a person's privacy center");

  // Turn ads off with the labelled switch.
  await page.getByRole("switch", { name: "More relevant ads" }).click();
  await waitFor(async () => (await page.getAttribute("#toggle-ads", "aria-checked")) === "false", 5_000, "the ads switch to turn off");
  assert(((await page.textContent("#state-ads")) || "").startsWith("Off"), "the ads state says off");
  assertEqual(await page.getAttribute("#toggle-product", "aria-checked"), "true", "product is untouched");
  const consent = await api("GET", `/v1/subjects/${subject}/consent`, TOKENS.subject);
  assertEqual(consent.body.purposes.ads.state, "denied", "the API shows ads denied");
  assertEqual(consent.body.purposes.product.state, "granted", "the API shows product still granted");
  const members = await audienceMembers();
  assert(!members.includes(PARTNER_ID), `the person is gone from the ads audience (${members.length} members left)`);
  log(`ads refused; audience now ${members.length} members without ${PARTNER_ID}`);
  await shot(page, "privacy-ads-off.png");

  // Download the report: the same document as the API.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const downloaded = JSON.parse(fs.readFileSync(await download.path(), "utf8"));
  assertEqual(downloaded.subject, subject, "the downloaded report is the person's");
  assertEqual(downloaded.consent.purposes.ads.state, "denied", "the downloaded report shows ads denied");
  const fromApi = await api("GET", `/v1/subjects/${subject}/report`, TOKENS.subject);
  assertEqual(JSON.stringify(downloaded.held), JSON.stringify(fromApi.body.held), "the download holds what the API reports");

  // Erasure asks first; cancelling keeps everything.
  await page.click("#erase");
  await page.waitForSelector("#confirm", { state: "visible" });
  await shot(page, "privacy-erase-confirm.png");
  await checkAccessibility(page, "the erasure confirmation");
  await page.click("#cancel-erase");
  await page.waitForSelector("#confirm", { state: "hidden" });
  assertEqual((await api("GET", `/v1/subjects/${subject}/report`, TOKENS.subject)).status, 200, "cancel erases nothing");

  // Confirmed: gone, and the report is 404.
  await page.click("#erase");
  await page.getByRole("button", { name: "Yes, erase everything" }).click();
  await page.waitForSelector("#erased", { state: "visible" });
  const report = await api("GET", `/v1/subjects/${subject}/report`, TOKENS.subject);
  assertEqual(report.status, 404, "the report is 404 after erasure");
  assert(!(await audienceMembers()).includes(PARTNER_ID), "still absent from the audience");
  await shot(page, "privacy-erased.png");

  // Looking the number up again finds nothing.
  await page.click("#erased-again");
  await page.getByLabel("Your phone number").fill(NUMBER);
  await page.keyboard.press("Enter");
  await waitFor(async () => ((await page.textContent("#lookup-error")) || "").includes("Nothing is held"), 5_000, "nothing held after erasure");
});
