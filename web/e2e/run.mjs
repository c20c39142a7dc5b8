// End-to-end test of the page in the system's headless Chromium (WebGPU on SwiftShader).
//
// Loads the demo model in the page's worker, explains a generated scene and checks the answer,
// the map and the numbers against the native CLI's JSON for the same inputs; then the rest of
// the page (exports, faithfulness, images, models from files and URLs, storage, share links,
// embed mode). Screenshots go to target/e2e/.
//
// usage: node web/e2e/run.mjs [--page URL | --spa] DIST_DIR CLI_JSON SCENE_MANIFEST CLI_CONTRAST_JSON CLI_FAITHFUL_JSON
//   --page URL  the page as another server serves it (scripts/serve.sh, what the README's first
//               command starts); the model folders this script serves come from a second
//               origin, with CORS, as the Hugging Face Hub's do. Every check runs.
//   --spa       the page served from DIST by a static server that answers every missing path
//               with index.html and status 200 (a single-page-app host); the demo model must
//               load and explain as in the CLI, and a damaged index must still be named.
//   neither     DIST served by a plain static server (404 for missing paths); every check runs.
// (CLI_CONTRAST_JSON: the CLI's explanation of the same question with --target ANSWER
// --contrast none; CLI_FAITHFUL_JSON: `llava-lens faithfulness --operator knockout --steps 8
// --seeds 2` on it)
import { launch } from './chromium.mjs';
import { serve } from './serve.mjs';
import { reporter, openPanel, idle } from './report.mjs';
import { shard, readSafetensors } from './safetensors.mjs';
import { keyboardLoop, checkAxe, checkPhone } from './screen.mjs';
import { checkWhatIf } from './whatif.mjs';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const args = process.argv.slice(2);
const flag = (name, withValue) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  return args.splice(i, withValue ? 2 : 1)[withValue ? 1 : 0];
};
const pageUrl = flag('--page', true);
const spa = flag('--spa', false) !== undefined;
const [dist, cliJsonPath, manifestPath, cliContrastPath, cliFaithfulPath] = args;
if (!dist || !cliJsonPath || !manifestPath || !cliContrastPath || !cliFaithfulPath || (pageUrl && spa)) {
  console.error('usage: node web/e2e/run.mjs [--page URL | --spa] DIST_DIR CLI_JSON SCENE_MANIFEST CLI_CONTRAST_JSON CLI_FAITHFUL_JSON');
  process.exit(2);
}
const out = `target/e2e/${pageUrl ? 'served' : spa ? 'spa' : 'static'}`;
fs.mkdirSync(out, { recursive: true });
const cli = JSON.parse(fs.readFileSync(cliJsonPath, 'utf8'));
const cliContrast = JSON.parse(fs.readFileSync(cliContrastPath, 'utf8'));
const cliFaithful = JSON.parse(fs.readFileSync(cliFaithfulPath, 'utf8')).results[0];
const scene = JSON.parse(fs.readFileSync(manifestPath, 'utf8').split('\n')[0]);


// The demo model rewritten as an HF sharded folder (two shards and an index), served from
// memory at /sharded/ with HEAD, range requests and SHA-256 ETags like the Hub. The first
// full download of the second shard is cut off halfway (the page must resume it); `offline`
// makes the folder unreachable (a later visit must load from the browser's storage).
const demoDir = path.join(dist, 'models/scenes-tiny');
const sharded = { ...shard(path.join(demoDir, 'model.safetensors')) };
for (const f of ['config.json', 'tokenizer.json']) sharded[f] = fs.readFileSync(path.join(demoDir, f));
const shardLog = [];
const net = { cutSecondShard: true, offline: false };

function serveSharded(req, res, name, corrupt = false) {
  const data = sharded[name];
  if (net.offline) { res.writeHead(503); return res.end('offline'); }
  if (!data) { res.writeHead(404); return res.end('not found'); }
  // /corrupt/ states a SHA-256 the first shard does not have (a damaged mirror).
  const stated = corrupt && name.startsWith('model-00001') ? Buffer.concat([data, Buffer.from('x')]) : data;
  const etag = `"${crypto.createHash('sha256').update(stated).digest('hex')}"`;
  const range = req.headers.range;
  shardLog.push(`${req.method} ${name} ${range || ''} ${req.headers['if-range'] ? 'if-range ' + req.headers['if-range'] : ''}`);
  const head = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag };
  if (req.method === 'HEAD') { res.writeHead(200, { ...head, 'content-length': data.length }); return res.end(); }
  if (range) {
    const [a, b] = range.replace('bytes=', '').split('-');
    const start = Number(a);
    const end = b ? Number(b) : data.length - 1;
    if (start >= data.length) { res.writeHead(416, { 'content-range': `bytes */${data.length}` }); return res.end(); }
    // The second shard's partial answers leave Content-Range out, as a cross-origin server that
    // does not expose it looks to a page: the page must resume from what it asked for.
    const cr = name.startsWith('model-00002') ? {} : { 'content-range': `bytes ${start}-${end}/${data.length}` };
    res.writeHead(206, { ...head, 'content-length': end - start + 1, ...cr });
    return res.end(data.subarray(start, end + 1));
  }
  res.writeHead(200, { ...head, 'content-length': data.length });
  if (name.startsWith('model-00002') && net.cutSecondShard && !corrupt) {
    net.cutSecondShard = false;
    res.write(data.subarray(0, data.length >> 1));
    return setTimeout(() => res.destroy(), 200);
  }
  res.end(data);
}

// A folder whose index is real JSON damaged (served as JSON): the loader must name it, not take
// it for absent.
function serveDamagedIndex(req, res, name) {
  const files = {
    'config.json': ['application/json', sharded['config.json']],
    'tokenizer.json': ['application/json', sharded['tokenizer.json']],
    'model.safetensors.index.json': ['application/json', Buffer.from('{"metadata": {}, "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors",,}}')],
  };
  if (!files[name]) { res.writeHead(404); return res.end('not found'); }
  const [type, data] = files[name];
  res.writeHead(200, { 'content-type': type, 'content-length': data.length });
  res.end(req.method === 'HEAD' ? undefined : data);
}

// A folder whose config.json never ends (sent in chunks, no Content-Length): the page must stop
// at its size cap, not fill memory or storage.
function serveOversize(req, res, name) {
  if (name !== 'config.json') { res.writeHead(404); return res.end('not found'); }
  res.writeHead(200, { 'content-type': 'application/json' });
  if (req.method === 'HEAD') return res.end();
  res.write('{"model_type": "llava", "padding": "');
  const chunk = Buffer.alloc(1 << 20, 'x');
  let sent = 0;
  const more = () => {
    // 64 MB at most, far past the 4 MiB cap; stops when the page hangs up.
    while (sent < 64 && !res.destroyed && res.write(chunk)) sent++;
    if (sent < 64 && !res.destroyed) res.once('drain', more); else res.end('"}');
  };
  more();
}

// The demo model behind a ?model= link on another server: nothing may be fetched from it
// before the visitor's click.
const linkedLog = [];
function serveLinked(req, res, name) {
  linkedLog.push(`${req.method} ${name}`);
  return serveSharded(req, res, name);
}

const routes = {
  '/oversize/': serveOversize,
  '/linked/': serveLinked,
  '/sharded/': (req, res, name) => serveSharded(req, res, name),
  '/corrupt/': (req, res, name) => serveSharded(req, res, name, true),
  '/damaged-index/': serveDamagedIndex,
};
// The page's server, and where this script's model folders are (another origin under --page).
const { server, base: ownBase } = await serve(pageUrl ? null : dist, routes, { spa, cors: Boolean(pageUrl) });
const base = pageUrl ? (pageUrl.endsWith('/') ? pageUrl : pageUrl + '/') : ownBase;
const models = ownBase;
console.log(`page at ${base}${pageUrl ? ' (served by another server)' : spa ? ' (missing paths answer index.html, 200)' : ''}; model folders at ${models}`);

const browser = await launch('llava-lens-e2e-');
const { check, fail, finish } = reporter();

// Every Content-Security-Policy violation, in the page (its event) and in its worker (Chromium
// reports those on the console).
await browser.addInitScript(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
});
const cspConsole = [];
const watchCsp = (p) => {
  const seen = (m) => { if (/Content.Security.Policy/i.test(m.text())) cspConsole.push(m.text()); };
  p.on('console', seen);
  p.on('worker', (w) => w.on('console', seen));
};
browser.on('page', watchCsp);

/** The page's policy is in force: present, without unsafe-eval, nothing violated by the page
 * itself, and scripts it does not allow refused. */
async function checkCsp(p, what) {
  const meta = await p.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
  check(Boolean(meta) && meta.includes("script-src 'self' 'wasm-unsafe-eval' 'sha256-") && !/'unsafe-eval'/.test(meta),
    `${what}: the Content-Security-Policy is served with the page (${meta})`);
  const violations = await p.evaluate(() => window.__csp);
  check(violations.length === 0 && cspConsole.length === 0, `${what}: no Content-Security-Policy violation (${JSON.stringify(violations)} ${JSON.stringify(cspConsole)})`);
  // Code the test evaluates is exempt from the policy, but a script it inserts is not: an inline
  // script without the page's hash, and a string given to setTimeout (eval), must not run.
  // Done when both were reported, or at once if either ran (no policy): events, not a delay.
  const blocked = await p.evaluate(() => new Promise((done) => {
    const reported = [];
    let timersRan = false;
    const finish = () => {
      const ran = window.__inlineRan === true || window.__stringRan === true;
      if (timersRan && (ran || reported.length >= 2)) done({ inline: window.__inlineRan === true, string: window.__stringRan === true, reported });
    };
    document.addEventListener('securitypolicyviolation', (e) => { reported.push(`${e.violatedDirective} ${e.blockedURI}`); finish(); });
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true;';
    document.head.appendChild(s);
    setTimeout('window.__stringRan = true;', 0);
    // Timers of equal delay run in order: this one runs after the string one would have.
    setTimeout(() => { timersRan = true; finish(); }, 0);
  }));
  check(!blocked.inline && !blocked.string && blocked.reported.some((v) => v.startsWith('script-src')),
    `${what}: an injected inline script and a string timer are refused and reported (${JSON.stringify(blocked)})`);
}

try {
  // The checks stop early under --spa (break suite).
  suite: {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1280, height: 800 });
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
    const demoStatus = await page.getByTestId('status').innerText();
    check(true, `demo model loaded in ${loadMs} ms: ${await page.getByTestId('status').innerText()}`);
    await page.screenshot({ path: `${out}/1-loaded.png`, fullPage: true });

    // The main loop by keyboard alone: tab to the first gallery question, Enter explains it,
    // the result is in view on one screen, then tab to the head grid and show another head.
    const t1 = Date.now();
    const loop = await keyboardLoop(page, check, out);
    const runMs = loop.runMs;
    check((await page.getByTestId('question').inputValue()) === scene.questions[0].question, 'the gallery question fills the question field');
    const runTiming = await page.getByTestId('timing').innerText();
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

    if (!spa) {
      // The two themes of the explained page (the paper's map shown), each checked by axe-core;
      // then the phone layout. The screenshots are the ones docs/screenshots/ keeps.
      await page.getByLabel('Best head').check();
      for (const scheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme: scheme });
        await page.screenshot({ path: `${out}/desktop-${scheme}.png` });
        await checkAxe(page, check, `the explained page, ${scheme} theme`);
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await checkPhone(browser, base, check, out, '[data-testid=status]:text-matches("^ready")');
    }

    if (spa) {
      // Under a fallback server: a damaged index is still named, and a folder that is not there
      // says so instead of "not valid JSON".
      await openPanel(page, 'model');
      await page.getByTestId('source').selectOption('url');
      // The Hub presets: the smallest real checkpoint first, with its costs; a click fills the URL.
      const presets = await page.getByTestId('preset').allInnerTexts();
      check(presets.length >= 5 && presets[0].startsWith('llava-hf/llava-interleave-qwen-0.5b-hf (about 1.7 GB to download')
        && presets.some((p) => p.startsWith('llava-hf/llava-1.5-7b-hf')), `Hub presets, smallest first: ${JSON.stringify(presets)}`);
      await page.getByTestId('preset').first().click();
      const filled = await page.getByTestId('model-url').inputValue();
      check(filled === 'https://huggingface.co/llava-hf/llava-interleave-qwen-0.5b-hf/resolve/main/', `the first preset fills its folder URL (${filled})`);
      await page.getByTestId('model-url').fill(models + 'damaged-index/');
      await page.getByTestId('load').click();
      const damaged = await page.getByTestId('error').filter({ hasText: 'model.safetensors.index.json' }).innerText({ timeout: 120_000 });
      check(damaged.includes('not valid JSON'), `a damaged index served as JSON gets a clear error naming it: "${damaged}"`);
      await page.getByTestId('model-url').fill(models + 'nowhere/');
      await page.getByTestId('load').click();
      const nowhere = await page.getByTestId('error').filter({ hasText: 'nowhere' }).innerText({ timeout: 120_000 });
      check(nowhere.includes('config.json is not there') && nowhere.includes('HTML page'), `a folder that is not there says so: "${nowhere}"`);
      await page.screenshot({ path: `${out}/spa-errors.png`, fullPage: true });
      await checkCsp(page, 'single-page-app host');
      fs.writeFileSync(`${out}/timings.json`, JSON.stringify({ load_ms: loadMs, run_to_map_ms: runMs, demo_status: demoStatus, timing: runTiming, browser: browser.browser()?.version() }, null, 2));
      break suite;
    }

    // Hovering the best patch shows its score and logit-lens tokens.
    const top = web.patch_scores.reduce((b, v, i, a) => (v > a[b] ? i : b), 0);
    const box = await page.getByTestId('map').boundingBox();
    // The gallery picture is square and all of it is the model's view: the grid fills the canvas.
    // locator.hover scrolls the map into view first; the position is relative to the canvas.
    await page.getByTestId('map').hover({ position: { x: ((top % web.grid) + 0.5) * box.width / web.grid, y: (Math.floor(top / web.grid) + 0.5) * box.height / web.grid } });
    const lens = await page.getByTestId('lens').innerText();
    check(lens.includes(`row ${Math.floor(top / web.grid)}, column ${top % web.grid}`) && lens.includes('logit lens of its image token: ') && !lens.includes('not recorded'),
      `hovering the top patch names it and its lens tokens: "${lens}"`);

    // Exports: the JSON download is the CLI's schema, the PNG download a PNG.
    await openPanel(page, 'exports');
    const [jsonDl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-json').click()]);
    const exported = JSON.parse(fs.readFileSync(await jsonDl.path(), 'utf8'));
    check(exported.schema === cli.schema && exported.target.id === cli.target.id, `JSON export (${jsonDl.suggestedFilename()}) has the CLI's schema and target`);
    const [pngDl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-png').click()]);
    const png = fs.readFileSync(await pngDl.path());
    check(png.subarray(1, 4).toString() === 'PNG', `PNG export (${pngDl.suggestedFilename()}, ${png.length} bytes)`);
    fs.writeFileSync(`${out}/5-export-map.png`, png);

    // "How faithful is this map?": the page's knockout curves give the CLI's AUCs.
    await openPanel(page, 'faithful');
    const tf = Date.now();
    await page.getByTestId('faithful-run').click();
    await page.getByTestId('faithful-auc').waitFor({ timeout: 600_000 });
    const faithfulMs = Date.now() - tf;
    const aucRow = async (name) => (await page.getByTestId('faithful-auc').locator('tr', { hasText: name }).first().locator('td').allInnerTexts()).slice(1).map(Number);
    const [mapDel, mapIns] = await aucRow('map');
    const [meanDel] = await aucRow('mean attention');
    const near = (a, b) => b !== null && Math.abs(a - b) <= 2e-3;
    check(near(mapDel, cliFaithful.map.deletion_auc) && near(mapIns, cliFaithful.map.insertion_auc) && near(meanDel, cliFaithful.mean_attention.deletion_auc),
      `faithfulness AUCs match the CLI's (map deletion ${mapDel} vs ${cliFaithful.map.deletion_auc?.toFixed(3)}, insertion ${mapIns} vs ${cliFaithful.map.insertion_auc?.toFixed(3)}; ${faithfulMs} ms)`);
    check(await page.getByTestId('faithful-curves').evaluate((c) => c.width > 0), 'the curves are drawn');
    await page.screenshot({ path: `${out}/12-faithfulness.png`, fullPage: true });

    // What if…: brushed knockout, activation patching on a gallery pair, the whole answer.
    await checkWhatIf(page, check, out, path.dirname(cliJsonPath));

    // Images by paste and by drop replace the input (two different PNGs: the CLI's maps).
    const put = async (how, b64) => page.evaluate(([b64, how]) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], `${how}.png`, { type: 'image/png' }));
      if (how === 'paste') document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }));
      else document.querySelector('[data-testid=image-drop]').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, [b64, how]);
    for (const [how, file] of [['paste', 'cli-map.png'], ['drop', 'cli-contrast-map.png']]) {
      const b64 = fs.readFileSync(path.join(path.dirname(cliJsonPath), file)).toString('base64');
      await put(how, b64);
      await page.waitForFunction((head) => document.querySelector('[data-testid=chosen-image]')?.src.includes(head), b64.slice(0, 300), { timeout: 30_000 });
      check(true, `an image given by ${how} becomes the input`);
    }
    await page.getByTestId('q-0-0').click();
    await idle(page);

    // "Why the answer rather than none": the same numbers as the CLI's --target/--contrast.
    await page.getByTestId('target').fill(scene.questions[0].answer);
    await page.getByTestId('contrast').fill('none');
    await page.getByTestId('run').click();
    await page.getByTestId('explained').filter({ hasText: 'rather than' }).waitFor({ timeout: 600_000 });
    await idle(page);
    const webContrast = JSON.parse(await page.getByTestId('json').textContent());
    fs.writeFileSync(`${out}/web-contrast.json`, JSON.stringify(webContrast, null, 1));
    check(webContrast.contrast?.id === cliContrast.contrast?.id && webContrast.target.id === cliContrast.target.id, 'contrast explanation: same target and contrast tokens as the CLI');
    const dContrast = maxDiff(webContrast.patch_scores, cliContrast.patch_scores);
    check(dContrast <= 1e-3, `contrast patch scores within 1e-3 of the CLI (max diff ${dContrast.toExponential(2)})`);
    check(webContrast.best_head.layer === cliContrast.best_head.layer && webContrast.best_head.head === cliContrast.best_head.head, 'contrast: same best head');
    await page.screenshot({ path: `${out}/6-contrast.png`, fullPage: true });

    // The storage panel lists the demo model, kept whole.
    await openPanel(page, 'storage');
    const demoRow = page.getByTestId('stored-row').filter({ hasText: 'models/scenes-tiny' });
    await demoRow.waitFor({ timeout: 30_000 });
    check((await demoRow.innerText()).includes('complete'), `the demo model is kept in the browser's storage: "${(await demoRow.innerText()).replace(/\s+/g, ' ')}"`);

    // Colour maps and the head grid: another palette redraws with its legend; clicking the
    // second-ranked head shows its map (computed with the top 3), the last-ranked one asks the
    // worker for its map.
    await page.getByTestId('palette').selectOption('viridis');
    check((await page.getByTestId('legend').innerText()).includes('lowest to highest'), 'the viridis colour map has its legend');
    await page.getByTestId('palette').selectOption('signed');
    const ranked = webContrast.head_maps.map((m) => m.head);
    const second = ranked[1];
    await page.getByTestId(`head-${second.layer}-${second.head}`).click();
    check((await page.getByTestId('map-caption').innerText()).includes(`head ${second.layer}.${second.head} (clicked)`), `clicking head ${second.layer}.${second.head} shows its map`);
    const all = webContrast.head_scores.flatMap((row, l) => row.map((v, h) => ({ l, h, v })));
    const last = all.filter((x) => !ranked.some((r) => r.layer === x.l && r.head === x.h))[0];
    if (last) {
      // A field edited since the explanation does not leak into the head's extra pass: its map
      // belongs to the explanation on screen.
      const prefixAsked = await page.getByTestId('prefix').inputValue();
      await page.getByTestId('prefix').fill('Edited but not asked');
      await page.getByTestId(`head-${last.l}-${last.h}`).click();
      await page.getByTestId('map-caption').filter({ hasText: `head ${last.l}.${last.h} (clicked)` }).waitFor({ timeout: 600_000 });
      await idle(page);
      const withHead = JSON.parse(await page.getByTestId('json').textContent());
      check(withHead.head_maps.some((m) => m.head.layer === last.l && m.head.head === last.h), `head ${last.l}.${last.h}, outside the top 3, got its map from the worker`);
      check(JSON.stringify(withHead.prompt_ids) === JSON.stringify(webContrast.prompt_ids) && (await page.getByTestId('answer').innerText()).startsWith(prefixAsked),
        'the extra pass for a head uses the explanation\'s own inputs, not fields edited since');
      await page.getByTestId('prefix').fill(prefixAsked);
    }
    await page.screenshot({ path: `${out}/8-head-clicked.png`, fullPage: true });

    // A word the demo model's vocabulary never saw whole: the answer comes with a warning.
    await page.getByTestId('target').fill('');
    await page.getByTestId('contrast').fill('');
    await page.getByTestId('question').fill('What is the color of the ball?');
    await page.getByTestId('prefix').fill('The color of the ball is');
    await page.getByTestId('run').click();
    const split = await page.getByTestId('split-words').innerText({ timeout: 600_000 });
    await idle(page);
    check(split.includes('"ball"') && split.includes('guess'), `a question word the demo model never saw whole is flagged: "${split}"`);

    // Bad inputs: an image that does not decode, model files that are not a model.
    await openPanel(page, 'model');
    await page.getByTestId('file').setInputFiles({ name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('not a png') });
    await page.getByTestId('error').filter({ hasText: 'broken.png is not an image' }).waitFor({ timeout: 30_000 });
    check(true, 'an undecodable image gets a clear error');
    await page.getByTestId('model-files').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
    await page.getByTestId('load').click();
    await page.getByTestId('error').filter({ hasText: 'config.json is not among the chosen files' }).waitFor({ timeout: 30_000 });
    check(true, 'files that are not a model get a clear error');
    await page.screenshot({ path: `${out}/9-not-a-model.png`, fullPage: true });

    // The demo model's files dropped on the model panel load as a local model.
    const demoFiles = ['config.json', 'tokenizer.json', 'model.safetensors'].map((n) => [n, fs.readFileSync(path.join(demoDir, n)).toString('base64')]);
    await page.evaluate((files) => {
      const dt = new DataTransfer();
      for (const [n, b64] of files) dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], n));
      document.querySelector('[data-testid=model-drop]').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, demoFiles);
    await page.locator('.chosen', { hasText: 'model.safetensors' }).waitFor({ timeout: 30_000 });
    await page.getByTestId('load').click();
    await page.locator('[data-testid=error], [data-testid=status]:text-matches("^ready: chosen files")').first().waitFor({ timeout: 300_000 });
    check(!(await page.getByTestId('error').count()), `dropped model files load: "${await page.getByTestId('status').innerText()}"`);

    // The folder picker: a whole model folder (with its README and logs beside the model files).
    await page.getByTestId('model-folder').setInputFiles(demoDir);
    await page.getByTestId('load').click();
    await page.locator('[data-testid=error], [data-testid=status]:text-matches("^ready: scenes-tiny")').first().waitFor({ timeout: 300_000 });
    check(!(await page.getByTestId('error').count()), `a picked model folder loads: "${await page.getByTestId('status').innerText()}"`);

    // A real family's layout, picked as a folder: tests/data/tiny-llava-qwen (made by
    // transformers: SigLIP, a Qwen2 decoder with tied embeddings, Qwen's byte-level BPE
    // tokenizer, the ChatML prompt) explains a photo as transformers does (its golden file).
    await page.getByTestId('model-folder').setInputFiles('tests/data/tiny-llava-qwen');
    await page.getByTestId('load').click();
    await page.locator('[data-testid=error], [data-testid=status]:text-matches("^ready: tiny-llava-qwen")').first().waitFor({ timeout: 300_000 });
    check(!(await page.getByTestId('error').count()), `the Qwen2 variant loads in the browser: "${await page.getByTestId('status').innerText()}"`);
    await page.getByTestId('file').setInputFiles('tests/data/images/small-97x61.png');
    await page.getByTestId('question').fill('What is the color of the dog?');
    await page.getByTestId('prefix').fill('The color of the dog is');
    await page.getByTestId('target').fill('');
    await page.getByTestId('contrast').fill('');
    await page.getByTestId('run').click();
    await page.locator('[data-testid=error], [data-testid=explained]').first().waitFor({ timeout: 600_000 });
    await idle(page);
    const qwen = JSON.parse(await page.getByTestId('json').textContent());
    const golden = readSafetensors('tests/data/golden/tiny-llava-qwen.safetensors');
    const wantScores = golden.head_scores;
    const dQwen = maxDiff(qwen.head_scores.flat(), Array.from(wantScores));
    const bestQwen = wantScores.indexOf(Math.max(...wantScores));
    const qHeads = qwen.head_scores[0].length;
    check(qwen.target.id === Number(golden.explain_target[0]) && dQwen <= 1e-4
      && qwen.best_head.layer * qHeads + qwen.best_head.head === bestQwen,
      `the Qwen2 variant's target, head scores (max diff ${dQwen.toExponential(2)}) and best head are transformers'`);
    // The map lies on the visitor's own 97 x 61 picture (not the model's square view), the part
    // the model did not see veiled.
    const [cw, ch] = await page.getByTestId('map').evaluate((c) => [c.width, c.height]);
    check(cw === 97 && ch === 61, `the map is drawn on the visitor's own picture (${cw} x ${ch}, the picture is 97 x 61)`);
    await page.screenshot({ path: `${out}/9b-qwen.png`, fullPage: true });

    // A sharded HF folder by URL: the cut download fails clearly, Load resumes it with a range
    // request, and the loaded model explains the scene as the CLI does.
    await page.getByTestId('source').selectOption('url');
    await page.getByTestId('model-url').fill(models + 'sharded/');
    await page.getByTestId('load').click();
    await page.getByTestId('error').filter({ hasText: 'interrupted' }).waitFor({ timeout: 120_000 });
    check((await page.getByTestId('error').innerText()).includes('load again to resume'), `a cut download says how to resume: "${await page.getByTestId('error').innerText()}"`);
    await page.getByTestId('load').click();
    await page.locator('[data-testid=status]:text-matches("^ready: .*sharded")').waitFor({ timeout: 300_000 });
    const shardedStatus = await page.getByTestId('status').innerText();
    const resumed = shardLog.find((l) => l.startsWith('GET model-00002') && /bytes=[1-9]/.test(l));
    check(Boolean(resumed) && resumed.includes('if-range "'), `the second shard resumed with a range request and If-Range, its answer without Content-Range (${resumed})`);
    const shardedRow = page.getByTestId('stored-row').filter({ hasText: 'sharded' });
    await shardedRow.filter({ hasText: 'complete' }).waitFor({ timeout: 30_000 });
    check(true, 'the storage panel lists the sharded model as complete');
    await page.getByTestId('target').fill('');
    await page.getByTestId('contrast').fill('');
    // A gallery question explains at once with the loaded model.
    await page.getByTestId('q-0-0').click();
    await page.getByTestId('explained').filter({ hasNotText: 'rather than' }).waitFor({ timeout: 600_000 });
    await idle(page);
    const webSharded = JSON.parse(await page.getByTestId('json').textContent());
    const dSharded = maxDiff(webSharded.patch_scores, cli.patch_scores);
    check(webSharded.model.includes('sharded') && dSharded <= 1e-3, `the sharded model's patch scores match the CLI's (max diff ${dSharded.toExponential(2)})`);
    await page.screenshot({ path: `${out}/10-sharded.png`, fullPage: true });

    // A later visit with the server gone loads from the browser's storage.
    net.offline = true;
    const later = await browser.newPage();
    await later.goto(base + '?model=' + encodeURIComponent(models + 'sharded/'));
    await later.locator('[data-testid=error], [data-testid=status]:text-matches("^ready: .*sharded")').first().waitFor({ timeout: 300_000 });
    await openPanel(later, 'storage');
    check(!(await later.getByTestId('error').count()), `offline, the stored sharded model loads: "${await later.getByTestId('status').innerText()}"`);
    await later.getByTestId('stored-row').filter({ hasText: 'sharded' }).getByTestId('delete-stored').click();
    await later.getByTestId('stored-row').filter({ hasText: 'sharded' }).waitFor({ state: 'detached', timeout: 30_000 });
    check(true, 'deleting the stored model removes it from the storage panel');
    await later.screenshot({ path: `${out}/11-offline-then-deleted.png`, fullPage: true });
    await later.close();
    net.offline = false;

    // A file whose bytes do not have the SHA-256 the server states is discarded, not loaded.
    await page.getByTestId('model-url').fill(models + 'corrupt/');
    await page.getByTestId('load').click();
    await page.getByTestId('error').filter({ hasText: 'SHA-256' }).waitFor({ timeout: 120_000 });
    const hashErr = await page.getByTestId('error').innerText();
    check(hashErr.includes('model-00001-of-00002.safetensors') && hashErr.includes('discarded'), `a hash mismatch is named and the download discarded: "${hashErr.slice(0, 120)}..."`);

    // A small file that never ends stops at its cap, with a clear error.
    await page.getByTestId('model-url').fill(models + 'oversize/');
    await page.getByTestId('load').click();
    const oversize = await page.getByTestId('error').filter({ hasText: 'oversize' }).innerText({ timeout: 120_000 });
    check(oversize.includes('config.json') && oversize.includes('4.2 MB'), `an endless config.json stops at its cap: "${oversize}"`);

    // A ?model= link to a model on another server, not stored: nothing is fetched before a click.
    const linkPage = await browser.newPage();
    await linkPage.goto(base + '?model=' + encodeURIComponent(models + 'linked/'));
    await openPanel(linkPage, 'model');
    await linkPage.getByTestId('link-model-ask').waitFor({ timeout: 120_000 });
    const ask = await linkPage.getByTestId('link-model-ask').innerText();
    check(linkedLog.length === 0 && ask.includes(new URL(models).host), `a ?model= link to another server waits for a click (${linkedLog.length} requests): "${ask}"`);
    await linkPage.getByTestId('load').click();
    await linkPage.locator('[data-testid=error], [data-testid=status]:text-matches("^ready: .*linked")').first().waitFor({ timeout: 300_000 });
    check(!(await linkPage.getByTestId('error').count()) && linkedLog.length > 0, `after the click it loads: "${await linkPage.getByTestId('status').innerText()}"`);

    // A folder whose manifest is damaged (a closed tab mid-write under the old code) is listed,
    // with its bytes, and can be deleted.
    await linkPage.evaluate(async () => {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('llava-lens', { create: true });
      const dir = await root.getDirectoryHandle('broken-0000000000000000', { create: true });
      for (const [name, bytes] of [['manifest.json', new Uint8Array(0)], ['model.safetensors', new Uint8Array(300000)]]) {
        const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
        await w.write(bytes);
        await w.close();
      }
    });
    await linkPage.reload();
    await openPanel(linkPage, 'storage');
    const damagedRow = linkPage.getByTestId('stored-row').filter({ hasText: 'broken-0000000000000000' });
    await damagedRow.waitFor({ timeout: 120_000 });
    const damagedText = (await damagedRow.innerText()).replace(/\s+/g, ' ');
    check(damagedText.includes('damaged') && damagedText.includes('300.0 kB'), `a damaged manifest is listed with its files' size: "${damagedText}"`);
    const leftovers = await linkPage.getByTestId('stored-row').filter({ hasText: 'oversize' }).count();
    check(leftovers === 0, `a model whose first file failed leaves no entry in storage (${leftovers})`);
    await damagedRow.getByTestId('delete-stored').click();
    await damagedRow.waitFor({ state: 'detached', timeout: 30_000 });
    check(true, 'and deleted');
    await linkPage.close();

    await openPanel(page, 'exports');
    await page.getByTestId('share').click();
    const link = await page.getByTestId('share-link').innerText();
    check(link.includes('#x=1.'), 'share link carries the explanation');
    const shared = await browser.newPage();
    await shared.goto(link);
    await shared.getByTestId('result').waitFor({ timeout: 60_000 });
    check((await shared.getByTestId('answer').innerText()) === answer, 'the share link shows the same answer');
    await shared.screenshot({ path: `${out}/3-shared.png`, fullPage: true });

    // Embed mode: a recorded explanation alone, no model panel, no worker.
    const embed = await browser.newPage();
    await embed.setViewportSize({ width: 800, height: 560 });
    await embed.goto(base + '?embed=1' + link.slice(link.indexOf('#')));
    await embed.getByTestId('result').waitFor({ timeout: 60_000 });
    check((await embed.getByTestId('answer').innerText()) === answer && !(await embed.getByTestId('model-panel').count()) && !(await embed.getByTestId('storage').count()),
      'embed mode shows the recorded explanation alone');
    const back = await embed.locator('a.full').getAttribute('href');
    check(back && !back.includes('embed') && back.includes('#x=1.'), `the embed links back to the full page with the explanation (${back?.slice(0, 40)}...)`);
    const embedFits = await embed.evaluate(() => document.documentElement.scrollWidth <= innerWidth);
    const mapInEmbed = await embed.getByTestId('map').boundingBox();
    check(embedFits && mapInEmbed && mapInEmbed.y + mapInEmbed.height <= 560, `the embed fits an 800 x 560 frame (map bottom at ${mapInEmbed && Math.round(mapInEmbed.y + mapInEmbed.height)})`);
    await embed.screenshot({ path: `${out}/13-embed.png`, fullPage: true });
    await embed.close();

    const broken = await browser.newPage();
    await broken.goto(base + '#x=1.damaged!');
    await broken.getByTestId('error').waitFor({ timeout: 60_000 });
    check((await broken.getByTestId('error').innerText()).includes('damaged'), 'a damaged link gives a clear error');
    // The automatic model load on arrival must not hide it: still there once the model is ready.
    await broken.waitForFunction(() => document.querySelector('[data-testid="status"]')?.textContent.startsWith('ready:'), null, { timeout: 120_000 });
    check((await broken.getByTestId('error').count()) === 1 && (await broken.getByTestId('error').innerText()).includes('damaged'),
      'the damaged link\'s error stays after the demo model loads');
    await broken.screenshot({ path: `${out}/4-damaged-link.png`, fullPage: true });

    await checkCsp(page, 'the page as served');

    // A browser without WebGPU: a clear message in the page, not a dead tab.
    const plain = await launch('llava-lens-e2e-plain-', { webgpu: false });
    try {
      const noGpu = await plain.newPage();
      await noGpu.goto(base);
      await noGpu.getByTestId('error').waitFor({ timeout: 60_000 });
      const msg = await noGpu.getByTestId('error').locator('p').first().innerText();
      check(msg.includes('no GPU') && !/Backends|vulkan|apt-get|adapter/.test(msg), `without WebGPU the page says so in plain words: "${msg.slice(0, 90)}..."`);
      const detail = noGpu.getByTestId('error-detail');
      check(!(await detail.evaluate((d) => d.open)) && (await detail.textContent()).includes('no WebGPU adapter'), 'the technical detail waits behind a closed toggle');
      await noGpu.screenshot({ path: `${out}/7-no-webgpu.png`, fullPage: true });
    } finally {
      await plain.close();
    }

    fs.writeFileSync(`${out}/timings.json`, JSON.stringify({ load_ms: loadMs, run_to_map_ms: runMs, demo_status: demoStatus, sharded_status: shardedStatus, timing: runTiming, faithfulness_ms: faithfulMs, browser: browser.browser()?.version() }, null, 2));
  }
} catch (e) {
  fail(e);
} finally {
  await browser.close();
  server.close();
}
finish('e2e');
