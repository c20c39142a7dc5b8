// End-to-end test of the page in the system's headless Chromium (WebGPU on SwiftShader).
//
// Serves the Trunk build (target/dist) on 127.0.0.1, loads the demo model in the page's worker,
// explains a generated scene and checks the answer, the map and the numbers against the native
// CLI's JSON for the same inputs; then opens the share link (renders without the model) and a
// damaged link (clear error). Screenshots go to target/e2e/.
//
// usage: node web/e2e/run.mjs DIST_DIR CLI_JSON SCENE_MANIFEST
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const [dist, cliJsonPath, manifestPath] = process.argv.slice(2);
if (!dist || !cliJsonPath || !manifestPath) {
  console.error('usage: node web/e2e/run.mjs DIST_DIR CLI_JSON SCENE_MANIFEST');
  process.exit(2);
}
const out = 'target/e2e';
fs.mkdirSync(out, { recursive: true });
const cli = JSON.parse(fs.readFileSync(cliJsonPath, 'utf8'));
const scene = JSON.parse(fs.readFileSync(manifestPath, 'utf8').split('\n')[0]);

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json' };
const server = http.createServer((req, res) => {
  const url = decodeURIComponent(req.url.split('?')[0]);
  const file = path.join(dist, url.endsWith('/') ? url + 'index.html' : url);
  if (!file.startsWith(path.resolve(dist)) && !path.resolve(file).startsWith(path.resolve(dist))) { res.writeHead(403); return res.end(); }
  fs.readFile(file, (err, data) => {
    if (err) { res.writeHead(404); return res.end('not found'); }
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(data);
  });
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}/`;

const profile = fs.mkdtempSync('/tmp/llava-lens-e2e-');
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const failures = [];
const check = (ok, what) => { console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`); if (!ok) failures.push(what); };

try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  page.on('worker', (w) => w.on('console', (m) => console.log(`  [worker] ${m.text()}`)));
  page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
  const t0 = Date.now();
  await page.goto(base);
  // Ready, or a clear error in the page: either ends the wait.
  await page.locator('[data-testid=error], [data-testid=status]:text-matches("^ready")').first().waitFor({ timeout: 300_000 });
  if (await page.getByTestId('error').count()) {
    await page.screenshot({ path: `${out}/0-load-error.png`, fullPage: true });
    throw new Error(`the page reports: ${await page.getByTestId('error').innerText()}`);
  }
  const loadMs = Date.now() - t0;
  check(true, `demo model loaded in ${loadMs} ms: ${await page.getByTestId('status').innerText()}`);
  await page.screenshot({ path: `${out}/1-loaded.png`, fullPage: true });

  await page.getByTestId('q-0-0').click();
  check((await page.getByTestId('question').inputValue()) === scene.questions[0].question, 'gallery fills the question');
  const t1 = Date.now();
  await page.getByTestId('run').click();
  await page.getByTestId('result').waitFor({ timeout: 600_000 });
  const runMs = Date.now() - t1;
  await page.screenshot({ path: `${out}/2-explained.png`, fullPage: true });
  const answer = await page.getByTestId('answer').innerText();
  check(answer.endsWith(scene.questions[0].answer), `answer "${answer}" names the colour ${scene.questions[0].answer}`);

  const web = JSON.parse(await page.getByTestId('json').textContent());
  fs.writeFileSync(`${out}/web.json`, JSON.stringify(web, null, 1));
  check(web.target.id === cli.target.id, `same explained token (${web.target.id} vs ${cli.target.id})`);
  check(web.best_head.layer === cli.best_head.layer && web.best_head.head === cli.best_head.head, 'same best head');
  const heads = (e) => e.top_heads.map((h) => `${h.layer}.${h.head}`).join(',');
  check(heads(web) === heads(cli), `same top heads (${heads(web)})`);
  const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  const dScores = maxDiff(web.patch_scores, cli.patch_scores);
  const dHeads = maxDiff(web.head_scores.flat(), cli.head_scores.flat());
  check(dScores <= 1e-3, `patch scores within 1e-3 of the CLI (max diff ${dScores.toExponential(2)})`);
  check(dHeads <= 1e-3, `head scores within 1e-3 of the CLI (max diff ${dHeads.toExponential(2)})`);
  const mapPixels = await page.getByTestId('map').evaluate((c) => c.width * c.height);
  check(mapPixels > 0, 'the map is drawn');

  await page.getByTestId('share').click();
  const link = await page.getByTestId('share-link').innerText();
  check(link.includes('#x=1.'), 'share link carries the explanation');
  const shared = await browser.newPage();
  await shared.goto(link);
  await shared.getByTestId('result').waitFor({ timeout: 60_000 });
  check((await shared.getByTestId('answer').innerText()) === answer, 'the share link shows the same answer');
  await shared.screenshot({ path: `${out}/3-shared.png`, fullPage: true });

  const broken = await browser.newPage();
  await broken.goto(base + '#x=1.damaged!');
  await broken.getByTestId('error').waitFor({ timeout: 60_000 });
  check((await broken.getByTestId('error').innerText()).includes('damaged'), 'a damaged link gives a clear error');
  await broken.screenshot({ path: `${out}/4-damaged-link.png`, fullPage: true });

  fs.writeFileSync(`${out}/timings.json`, JSON.stringify({ load_ms: loadMs, run_to_map_ms: runMs, browser: browser.browser()?.version() }, null, 2));
} catch (e) {
  failures.push(String(e));
  console.error(e);
} finally {
  await browser.close();
  server.close();
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('e2e: all checks passed');
