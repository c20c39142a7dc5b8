// End-to-end test of the page in the system's headless Chromium (WebGPU on SwiftShader).
//
// Serves the Trunk build (target/dist) on 127.0.0.1, loads the demo model in the page's worker,
// explains a generated scene and checks the answer, the map and the numbers against the native
// CLI's JSON for the same inputs; then opens the share link (renders without the model) and a
// damaged link (clear error). Screenshots go to target/e2e/.
//
// usage: node web/e2e/run.mjs DIST_DIR CLI_JSON SCENE_MANIFEST CLI_CONTRAST_JSON
// (CLI_CONTRAST_JSON: the CLI's explanation of the same question with --target ANSWER
// --contrast none)
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const [dist, cliJsonPath, manifestPath, cliContrastPath] = process.argv.slice(2);
if (!dist || !cliJsonPath || !manifestPath || !cliContrastPath) {
  console.error('usage: node web/e2e/run.mjs DIST_DIR CLI_JSON SCENE_MANIFEST CLI_CONTRAST_JSON');
  process.exit(2);
}
const out = 'target/e2e';
fs.mkdirSync(out, { recursive: true });
const cli = JSON.parse(fs.readFileSync(cliJsonPath, 'utf8'));
const cliContrast = JSON.parse(fs.readFileSync(cliContrastPath, 'utf8'));
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
  const tops = (e) => e.top.map((t) => t.id).join(',');
  check(tops(web) === tops(cli) && maxDiff(web.top.map((t) => t.log_prob), cli.top.map((t) => t.log_prob)) <= 1e-3, `same top-5 tokens and log-probabilities (${tops(web)})`);
  const dScores = maxDiff(web.patch_scores, cli.patch_scores);
  const dHeads = maxDiff(web.head_scores.flat(), cli.head_scores.flat());
  check(dScores <= 1e-3, `patch scores within 1e-3 of the CLI (max diff ${dScores.toExponential(2)})`);
  check(dHeads <= 1e-3, `head scores within 1e-3 of the CLI (max diff ${dHeads.toExponential(2)})`);
  const mapPixels = await page.getByTestId('map').evaluate((c) => c.width * c.height);
  check(mapPixels > 0, 'the map is drawn');

  // Hovering the best patch shows its score and logit-lens tokens.
  const top = web.patch_scores.reduce((b, v, i, a) => (v > a[b] ? i : b), 0);
  const box = await page.getByTestId('map').boundingBox();
  const side = box.height; // the drawing is the square crop plus the colour bar
  // locator.hover scrolls the map into view first; the position is relative to the canvas.
  await page.getByTestId('map').hover({ position: { x: ((top % web.grid) + 0.5) * side / web.grid, y: (Math.floor(top / web.grid) + 0.5) * side / web.grid } });
  const lens = await page.getByTestId('lens').innerText();
  check(lens.includes(`row ${Math.floor(top / web.grid)}, column ${top % web.grid}`) && lens.includes('logit lens of its image token: ') && !lens.includes('not recorded'),
    `hovering the top patch names it and its lens tokens: "${lens}"`);

  // Exports: the JSON download is the CLI's schema, the PNG download a PNG.
  const [jsonDl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-json').click()]);
  const exported = JSON.parse(fs.readFileSync(await jsonDl.path(), 'utf8'));
  check(exported.schema === cli.schema && exported.target.id === cli.target.id, `JSON export (${jsonDl.suggestedFilename()}) has the CLI's schema and target`);
  const [pngDl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-png').click()]);
  const png = fs.readFileSync(await pngDl.path());
  check(png.subarray(1, 4).toString() === 'PNG', `PNG export (${pngDl.suggestedFilename()}, ${png.length} bytes)`);
  fs.writeFileSync(`${out}/5-export-map.png`, png);

  // "Why the answer rather than none": the same numbers as the CLI's --target/--contrast.
  await page.getByTestId('target').fill(scene.questions[0].answer);
  await page.getByTestId('contrast').fill('none');
  await page.getByTestId('run').click();
  await page.getByTestId('explained').filter({ hasText: 'rather than' }).waitFor({ timeout: 600_000 });
  await page.getByTestId('run').filter({ hasText: 'Run' }).waitFor({ timeout: 600_000 });
  const webContrast = JSON.parse(await page.getByTestId('json').textContent());
  fs.writeFileSync(`${out}/web-contrast.json`, JSON.stringify(webContrast, null, 1));
  check(webContrast.contrast?.id === cliContrast.contrast?.id && webContrast.target.id === cliContrast.target.id, 'contrast explanation: same target and contrast tokens as the CLI');
  const dContrast = maxDiff(webContrast.patch_scores, cliContrast.patch_scores);
  check(dContrast <= 1e-3, `contrast patch scores within 1e-3 of the CLI (max diff ${dContrast.toExponential(2)})`);
  check(webContrast.best_head.layer === cliContrast.best_head.layer && webContrast.best_head.head === cliContrast.best_head.head, 'contrast: same best head');
  await page.screenshot({ path: `${out}/6-contrast.png`, fullPage: true });

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

  // A browser without WebGPU: a clear message in the page, not a dead tab.
  const plainProfile = fs.mkdtempSync('/tmp/llava-lens-e2e-nogpu-');
  const plain = await chromium.launchPersistentContext(plainProfile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const noGpu = await plain.newPage();
    await noGpu.goto(base);
    await noGpu.getByTestId('error').waitFor({ timeout: 60_000 });
    const msg = await noGpu.getByTestId('error').innerText();
    check(msg.includes('no WebGPU adapter') && !msg.includes('apt-get'), `without WebGPU the page says so: "${msg.slice(0, 80)}..."`);
    await noGpu.screenshot({ path: `${out}/7-no-webgpu.png`, fullPage: true });
  } finally {
    await plain.close();
  }

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
