// The "What if…?" panel against the CLI (docs/INTERVENTIONS.md): patches brushed on the map are
// knocked out with the numbers of `llava-lens ablate --knockout-patches`, activation patching on
// a gallery pair gives `llava-lens patch`'s grids, and the whole answer gives `llava-lens
// answer`'s tokens and explanations; a share link carries them all. CLI documents come from
// scripts/test-web.sh:
// cli-knockout.json, cli-patch.json, cli-answer.json beside the other CLI files.
import fs from 'node:fs';
import { openPanel, idle } from './report.mjs';

const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
// The page (SwiftShader) and the CLI (lavapipe) round differently: even without an intervention
// the log-probabilities of unlikely tokens differ by up to about 8e-4 (the explanation's top 5).
// Outcomes are compared as probabilities within 2e-4 and log-probabilities within 5e-3 (measured so far: up to 1.2e-3).
const sameOutcome = (lpWeb, lpCli) => Math.abs(Math.exp(lpWeb) - Math.exp(lpCli)) <= 2e-4 && Math.abs(lpWeb - lpCli) <= 5e-3;

/** Runs the panel's three interventions on the explanation on screen (scene 0, question 0). */
export async function checkWhatIf(page, check, out, cliDir) {
  const cliAblate = JSON.parse(fs.readFileSync(`${cliDir}/cli-knockout.json`, 'utf8'));
  const cliKnock = cliAblate.knockout;
  const cliPatch = JSON.parse(fs.readFileSync(`${cliDir}/cli-patch.json`, 'utf8')).patching;
  const cliZoom = JSON.parse(fs.readFileSync(`${cliDir}/cli-zoom.json`, 'utf8'));
  const cliAnswer = JSON.parse(fs.readFileSync(`${cliDir}/cli-answer.json`, 'utf8')).answer;
  const web = JSON.parse(await page.getByTestId('json').textContent());
  await openPanel(page, 'whatif');

  // Brush: one stroke along a row of the map from the first of the CLI's patches to the last
  // (test-web.sh chose them as a run of one row through the map's best patch).
  await page.getByTestId('brush').click();
  const map = page.getByTestId('map');
  await map.scrollIntoViewIfNeeded();
  const box = await map.boundingBox();
  const g = web.grid;
  const centre = (p) => [box.x + ((p % g) + 0.5) * box.width / g, box.y + (Math.floor(p / g) + 0.5) * box.height / g];
  const patches = [...cliKnock.patches].sort((a, b) => a - b);
  const [x0, y0] = centre(patches[0]);
  const [x1, y1] = centre(patches[patches.length - 1]);
  await page.mouse.move(x0, y0);
  await page.mouse.down();
  await page.mouse.move(x1, y1, { steps: 4 * patches.length });
  await page.mouse.up();
  const result = page.getByTestId('knockout-p');
  await result.waitFor({ timeout: 600_000 });
  await idle(page);
  const brushed = (await result.getAttribute('data-patches')).split(',').map(Number).sort((a, b) => a - b);
  check(JSON.stringify(brushed) === JSON.stringify(patches), `a stroke over the map brushes the CLI's patches (${brushed} vs ${patches})`);
  const after = Number(await result.getAttribute('data-after'));
  const before = Number(await result.getAttribute('data-before'));
  const dAfter = Math.abs(after - cliKnock.after.target.log_prob);
  const dBefore = Math.abs(before - cliKnock.before.target.log_prob);
  check(dAfter <= 2e-4 && dBefore <= 2e-4,
    `the knockout changes the answer as the CLI predicts: log p ${before.toFixed(4)} -> ${after.toFixed(4)} (CLI ${cliKnock.before.target.log_prob.toFixed(4)} -> ${cliKnock.after.target.log_prob.toFixed(4)}; diffs ${dBefore.toExponential(1)}, ${dAfter.toExponential(1)})`);
  check(after < before, `knocking out the best patch's row lowers p(answer) (${(await result.innerText()).trim()})`);
  check((await page.locator('.frame .outline.knocked').count()) === patches.length, 'the knocked-out patches are marked on the map');
  // Keyboard: Home puts the map's cursor on its best patch (inside the stroke), Space takes it
  // out of the set and knocks out the rest.
  const old = await result.getAttribute('data-patches');
  await map.focus();
  await page.keyboard.press('Home');
  await page.keyboard.press('Space');
  await page.waitForFunction((o) => document.querySelector('[data-testid=knockout-p]')?.dataset.patches !== o, old, { timeout: 600_000 });
  await idle(page);
  const toggled = (await result.getAttribute('data-patches')).split(',').map(Number);
  const best = web.patch_scores.indexOf(Math.max(...web.patch_scores));
  check(toggled.length === patches.length - 1 && !toggled.includes(best), `Space on the map's cursor (the best patch) takes it out of the knockout (${toggled})`);
  await page.getByTestId('brush').click();
  await page.screenshot({ path: `${out}/13-knockout.png`, fullPage: true });

  // Ablation: the best head (clicked in the head grid, which puts the cursor on it), zeroed.
  await page.getByTestId(`head-${web.best_head.layer}-${web.best_head.head}`).click();
  await idle(page);
  await page.getByTestId('ablate-zero').click();
  const ablated = page.getByTestId('ablate-p');
  await ablated.waitFor({ timeout: 600_000 });
  await idle(page);
  const [cliHead] = cliAblate.heads.heads;
  const lpAbl = Number(await ablated.getAttribute('data-after'));
  const dAbl = Math.abs(lpAbl - cliAblate.heads.after.target.log_prob);
  check((await ablated.getAttribute('data-heads')) === `${cliHead[0]}.${cliHead[1]}` && sameOutcome(lpAbl, cliAblate.heads.after.target.log_prob),
    `zero-ablating the best head ${cliHead[0]}.${cliHead[1]} gives the CLI's p(answer) (log p diff ${dAbl.toExponential(1)}): "${(await ablated.innerText()).trim()}"`);

  // Activation patching: scene 2 (index 1) of the gallery with the same question, image positions.
  await page.getByTestId('patch-scene').selectOption('1');
  await page.getByTestId('patch-positions').selectOption('image');
  const tp = Date.now();
  await page.getByTestId('patch-run').click();
  await page.getByTestId('patch-summary').waitFor({ timeout: 900_000 });
  await idle(page);
  const patchMs = Date.now() - tp;
  const wp = JSON.parse(await page.getByTestId('patch-summary').getAttribute('data-json'));
  fs.writeFileSync(`${out}/web-patch.json`, JSON.stringify(wp, null, 1));
  check(wp.target === cliPatch.target && wp.contrast === cliPatch.contrast && JSON.stringify(wp.positions) === JSON.stringify(cliPatch.positions),
    `patching a gallery pair: the CLI's answer pair (${wp.target} vs ${wp.contrast}) and positions (${wp.positions.length})`);
  const dHeads = maxDiff(wp.heads.flat(), cliPatch.heads.flat());
  const dResid = maxDiff(wp.resid.flat(), cliPatch.resid.flat());
  check(dHeads <= 5e-4 && dResid <= 5e-4, `patching grids within 5e-4 of the CLI (heads ${dHeads.toExponential(1)}, residual ${dResid.toExponential(1)}; ${wp.runs} runs in ${patchMs} ms)`);
  check((await page.locator('[data-testid^=patch-layer-]').count()) === wp.resid.length, 'a patch map per layer is drawn');
  await page.screenshot({ path: `${out}/14-patching.png`, fullPage: true });

  // Zoom and re-ask: the map's window and three random ones, as the CLI's `zoom --seeds 3`.
  await page.getByTestId('zoom-run').click();
  const zoomed = page.getByTestId('zoom-p');
  await zoomed.waitFor({ timeout: 600_000 });
  await idle(page);
  const [wMap, wRandom] = JSON.parse(await zoomed.getAttribute('data-json'));
  const sameWindow = (a, b) => a.row === b.row && a.col === b.col && a.side === b.side;
  const pairs = [[wMap, cliZoom.map], ...wRandom.map((r, i) => [r, cliZoom.random[i]])].filter(([, c]) => c);
  const dZoom = Math.max(...pairs.map(([w, c]) => Math.abs(w.outcome.target.log_prob - c.outcome.target.log_prob)));
  check(sameWindow(wMap.window, cliZoom.map.window) && wRandom.length === cliZoom.random.length && wRandom.every((r, i) => sameWindow(r.window, cliZoom.random[i].window))
    && pairs.every(([w, c]) => sameOutcome(w.outcome.target.log_prob, c.outcome.target.log_prob)),
    `zooming on the map's window asks again as the CLI does (window ${JSON.stringify(wMap.window)}, log p diff ${dZoom.toExponential(1)}): "${(await zoomed.innerText()).trim()}"`);

  // The whole answer: the CLI's tokens, and a later token's explanation in the main view.
  await page.getByTestId('answer-run').click();
  await page.getByTestId('answer-token-0').waitFor({ timeout: 900_000 });
  await idle(page);
  const words = await page.locator('[data-testid^=answer-token-]').allInnerTexts();
  const cliWords = cliAnswer.explanations.map((e) => e.target.text.replace(/^▁/, ''));
  check(JSON.stringify(words) === JSON.stringify(cliWords), `the whole answer: the CLI's tokens (${words.join(' ')})`);
  const i = Math.min(1, words.length - 1);
  await page.getByTestId(`answer-token-${i}`).click();
  const shown = JSON.parse(await page.getByTestId('json').textContent());
  const want = cliAnswer.explanations[i];
  const dTok = maxDiff(shown.head_scores.flat(), want.head_scores.flat());
  const dMap = maxDiff(shown.patch_scores, want.patch_scores);
  check(shown.target.id === want.target.id && JSON.stringify(shown.prompt_ids) === JSON.stringify(want.prompt_ids) && dTok <= 1e-3 && dMap <= 1e-3,
    `answer token ${i} shows its own explanation, the CLI's (head scores ${dTok.toExponential(1)}, patch scores ${dMap.toExponential(1)})`);
  check((await page.getByTestId('explained').innerText()).includes(words[i]), `the answer card explains "${words[i]}"`);
  await page.screenshot({ path: `${out}/15-whole-answer.png`, fullPage: true });
  await checkSharedWhatIf(page, check, out, words);
  await page.getByTestId('answer-token-0').click();
}

/** A share link made now carries every result above: a fresh page shows the same numbers (the
 * same attributes, byte for byte) with the panel's buttons off, as it has no input to run on. */
async function checkSharedWhatIf(page, check, out, words) {
  const attrs = async (p) => ({
    knockout: await p.getByTestId('knockout-p').evaluate((e) => [e.dataset.before, e.dataset.after, e.dataset.patches].join('|')),
    ablation: await p.getByTestId('ablate-p').evaluate((e) => [e.dataset.before, e.dataset.after, e.dataset.heads, e.dataset.mode].join('|')),
    patching: await p.getByTestId('patch-summary').getAttribute('data-json'),
    zoom: await p.getByTestId('zoom-p').getAttribute('data-json'),
    words: await p.locator('[data-testid^=answer-token-]').allInnerTexts(),
    shownWord: await p.locator('[data-testid^=answer-token-][aria-pressed=true]').innerText(),
  });
  const here = await attrs(page);
  await openPanel(page, 'exports');
  await page.getByTestId('share').click();
  const link = await page.getByTestId('share-link').innerText();
  const shared = await page.context().newPage();
  try {
    await shared.goto(link);
    await shared.getByTestId('result').waitFor({ timeout: 60_000 });
    await openPanel(shared, 'whatif');
    await shared.getByTestId('patch-summary').waitFor({ timeout: 60_000 });
    const there = await attrs(shared);
    for (const k of Object.keys(here)) {
      check(JSON.stringify(there[k]) === JSON.stringify(here[k]), `the share link carries the ${k} result as shown (${String(here[k]).slice(0, 60)}…)`);
    }
    check((await shared.getByTestId('explained').innerText()).includes(here.shownWord), `the shared page shows answer word "${here.shownWord}", as the page did`);
    await shared.getByTestId('answer-token-0').click();
    check((await shared.getByTestId('explained').innerText()).includes(words[0]), 'a shared answer word shows its own explanation');
    const off = await Promise.all(['patch-run', 'zoom-run', 'answer-run', 'brush'].map((id) => shared.getByTestId(id).isDisabled()));
    check(off.every(Boolean) && (await shared.getByTestId('panel-whatif').innerText()).includes('Recorded in the share link.'),
      'without an input to run on, the shared panel only shows (its buttons are off, its times say recorded)');
    await shared.screenshot({ path: `${out}/16-shared-whatif.png`, fullPage: true });
  } finally {
    await shared.close();
  }
}
