// GraphiQL in a real browser: headless Chromium (the system's, driven by puppeteer-core) opens
// the server's GraphiQL page with no network beyond loopback, checks that the docs explorer shows
// the schema, runs a query and a queueStatus subscription with a bearer token, and saves a
// screenshot.
//   node scripts/graphql-clients/graphiql.mjs <server base URL> <access token> <queue token> <screenshot.png>
// Env: CHROMIUM (the browser; default /usr/bin/chromium). Prints one JSON line of what it saw;
// exit status 0 when every step passed, 1 otherwise.
import puppeteer from 'puppeteer-core';

const [base, accessToken, queueToken, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: graphiql.mjs <base URL> <access token> <queue token> <screenshot.png>');
  process.exit(2);
}
const seen = { offLoopback: [], steps: {}, console: [] };
const loopback = (url) => /^(https?|wss?):\/\/(127\.0\.0\.1|localhost)(:\d+)?\//.test(url) || url.startsWith('data:');

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    // Nothing beyond loopback resolves; requests that try anyway are recorded and aborted below.
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
  ],
});
let ok = false;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warn') seen.console.push(message.text().slice(0, 300));
  });
  page.on('pageerror', (err) => seen.console.push(`page error: ${String(err).slice(0, 300)}`));
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    if (loopback(request.url())) request.continue();
    else {
      seen.offLoopback.push(request.url());
      request.abort();
    }
  });
  // The token the headers editor would hold, as GraphiQL stores it.
  await page.evaluateOnNewDocument((token) => {
    window.localStorage.setItem('graphiql:headers', JSON.stringify({ Authorization: `Bearer ${token}` }));
  }, accessToken);
  await page.goto(new URL('/graphql', base).href, { waitUntil: 'networkidle0', timeout: 30000 });
  await page.waitForSelector('.graphiql-container', { timeout: 15000 });
  seen.steps.page = true;

  // The docs explorer lists the schema's root types once introspection has answered.
  await page.click('button[aria-label="Show Documentation Explorer"]');
  await page.waitForFunction(
    () => (document.querySelector('.graphiql-doc-explorer')?.innerText || '').includes('Subscription'),
    { timeout: 15000 },
  );
  seen.steps.docs = await page.$eval('.graphiql-doc-explorer', (el) => el.innerText.slice(0, 200));

  const run = async (query, expect) => {
    await page.evaluate((text) => {
      document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
    }, query);
    // GraphiQL parses the edited document on its own schedule; the run button uses that parse
    // to choose HTTP or the websocket.
    await new Promise((resolve) => setTimeout(resolve, 750));
    await page.click('.graphiql-execute-button');
    await page.waitForFunction(
      (want) => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() || '').includes(want),
      { timeout: 15000 },
      expect,
    );
    return page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());
  };
  seen.steps.query = JSON.parse(await run('{ concerts(limit: 1) { id title } me { id } }', '"title"'));
  const subscription = await run(
    `subscription { queueStatus(token: "${queueToken}") { status position } }`,
    '"status"',
  );
  seen.steps.subscription = JSON.parse(subscription);
  await page.screenshot({ path: screenshot });
  seen.steps.screenshot = screenshot;
  ok = seen.offLoopback.length === 0
    && !seen.steps.query.errors && seen.steps.query.data.me !== null
    && !seen.steps.subscription.errors;
} catch (err) {
  seen.error = String(err && err.message ? err.message : err);
  try {
    const pages = await browser.pages();
    seen.response = await pages[pages.length - 1].evaluate(
      () => document.querySelector('.graphiql-response')?.innerText?.slice(0, 500));
  } catch {
    // the page is gone
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ok, ...seen }));
process.exit(ok ? 0 : 1);
