// The page as a product, checked in the browser: the main loop driven by the keyboard alone,
// the result on one laptop screen, an automated accessibility check (axe-core, every rule and
// impact) in the light and the dark theme, and the phone layout (no sideways scrolling, no tap
// target under 44 px). Screenshots of each go beside the other e2e screenshots.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { idle, openPanel } from './report.mjs';

const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The testid of the focused element (or its tag). */
const focused = (page) => page.evaluate(() => document.activeElement?.dataset?.testid || document.activeElement?.tagName || '');

/** Presses Tab until `want(testid)` holds, at most `limit` times; the number of presses. */
async function tabTo(page, want, limit) {
  for (let n = 1; n <= limit; n++) {
    await page.keyboard.press('Tab');
    if (want(await focused(page))) return n;
  }
  return -1;
}

/** The boxes of `ids` lie inside the viewport (no scrolling needed to see them). */
export async function checkLayout(page, check, ids, what) {
  const view = page.viewportSize();
  const scroll = await page.evaluate(() => [scrollX, scrollY]);
  const boxes = {};
  for (const id of ids) boxes[id] = await page.getByTestId(id).boundingBox();
  const inside = Object.values(boxes).every((b) => b && b.x >= 0 && b.y >= 0 && b.x + b.width <= view.width && b.y + b.height <= view.height);
  const show = Object.entries(boxes).map(([k, b]) => `${k} ${b ? `${Math.round(b.x)},${Math.round(b.y)} ${Math.round(b.width)}x${Math.round(b.height)}` : 'missing'}`).join('; ');
  check(inside && scroll[0] === 0 && scroll[1] === 0, `${what}: all within ${view.width} x ${view.height} without scrolling (${show})`);
}

/** The main loop by keyboard only. Returns the time from Enter to the answer. */
export async function keyboardLoop(page, check, out) {
  await page.locator('body').focus();
  const toQuestion = await tabTo(page, (id) => id === 'q-0-0', 30);
  check(toQuestion > 0, `Tab reaches the first gallery question in ${toQuestion} presses`);
  const t0 = Date.now();
  await page.keyboard.press('Enter');
  await page.getByTestId('result').waitFor({ timeout: 600_000 });
  await idle(page);
  const runMs = Date.now() - t0;
  check(await page.getByTestId('answer').getAttribute('aria-live') === 'polite', 'the answer is announced when it arrives (aria-live)');
  await checkLayout(page, check, ['map', 'answer', 'heads'], 'after the first explanation at 1280 x 800, the map, the answer and the head grid');
  await page.screenshot({ path: `${out}/2-explained.png` });

  // On to the head grid: one stop, the arrows move its cursor, Enter shows that head's map.
  const toGrid = await tabTo(page, (id) => id === 'heads', 40);
  check(toGrid > 0, `Tab goes on from the question to the head grid in ${toGrid} presses`);
  const before = await page.getByTestId('heads').getAttribute('aria-activedescendant');
  const rows = await page.locator('[data-testid=heads] tr').count();
  await page.keyboard.press(before === 'head-0-0' || rows < 2 ? 'ArrowDown' : 'ArrowUp');
  const cursor = await page.getByTestId('heads').getAttribute('aria-activedescendant');
  check(cursor && cursor !== before, `an arrow moves the grid's cursor (${before} to ${cursor})`);
  await page.keyboard.press('Enter');
  const [, l, h] = cursor.split('-');
  await page.getByTestId('map-caption').filter({ hasText: `head ${l}.${h} (clicked)` }).waitFor({ timeout: 600_000 });
  await idle(page);
  check(true, `Enter shows head ${l}.${h}'s map`);
  const readout = await page.getByTestId('head-readout').innerText();
  check(readout.startsWith(`head ${l}.${h}:`) && readout.includes('shown'), `the grid's readout names the shown head: "${readout}"`);

  // The map itself: focus it and move a patch cursor with the arrows; its readout is text.
  await page.getByTestId('map').focus();
  await page.keyboard.press('Home');
  const lens = await page.getByTestId('lens').innerText();
  check(/^patch row \d+, column \d+: /.test(lens), `the focused map's arrow keys read a patch: "${lens.slice(0, 60)}..."`);
  const label = await page.getByTestId('map').getAttribute('aria-label');
  check(label.startsWith('Highest patches of the'), `the map has a text alternative: "${label}"`);
  return { runMs };
}

/** axe-core over the whole page in its current state: no violation of any impact. */
export async function checkAxe(page, check, what) {
  // Code the test evaluates is exempt from the page's Content-Security-Policy.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const found = result.violations.map((v) => `${v.id} (${v.impact}, ${v.nodes.length}: ${v.nodes.slice(0, 2).map((n) => n.target.join(' ')).join(' | ')})`);
  check(found.length === 0, `${what}: axe-core ${result.testEngine.version} finds no violations${found.length ? `: ${found.join('; ')}` : ''}`);
}

/** Every control a finger can reach: its box, or its label's when the label holds it. */
function targets() {
  const sel = 'button, a[href], input, select, summary, textarea, [tabindex]:not([tabindex="-1"])';
  return [...document.querySelectorAll(sel)]
    .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
    .map((e) => {
      const r = (e.closest('label') || e).getBoundingClientRect();
      return { what: e.dataset.testid || `${e.tagName.toLowerCase()}${e.className ? '.' + e.className : ''} "${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 24)}"`, w: r.width, h: r.height };
    });
}

/** The phone layout at 390 x 844 after an explanation, with every panel open. */
export async function checkPhone(browser, base, check, out, modelReady) {
  const phone = await browser.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(base);
  // Picked as soon as it shows, most likely before the model is ready: it is explained once the
  // model is (or at once if it already was).
  await phone.getByTestId('q-0-0').click();
  const early = !/^ready/.test(await phone.getByTestId('status').innerText());
  await phone.locator(modelReady).first().waitFor({ timeout: 300_000 });
  await phone.getByTestId('result').waitFor({ timeout: 600_000 });
  await idle(phone);
  check(true, `a gallery question tapped ${early ? 'before' : 'after'} the model was ready is explained`);
  for (const scheme of ['light', 'dark']) {
    await phone.emulateMedia({ colorScheme: scheme });
    await phone.screenshot({ path: `${out}/phone-${scheme}.png` });
  }
  await phone.emulateMedia({ colorScheme: 'light' });
  for (const id of ['model', 'exports', 'faithful', 'batch', 'storage']) await openPanel(phone, id);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  // The elements that stick out (the deepest first), to say where an overflow comes from.
  const wide = await phone.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5 && ![...e.children].some((c) => c.getBoundingClientRect().right > innerWidth + 0.5))
    .slice(0, 4).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${e.dataset.testid || ''} right ${Math.round(e.getBoundingClientRect().right)}`));
  check(overflow <= 0, `on a 390 px phone nothing scrolls sideways (overflow ${overflow} px, every panel open)${overflow > 0 ? `: ${wide.join('; ')}` : ''}`);
  const small = (await phone.evaluate(targets)).filter((t) => t.w < 44 || t.h < 44);
  check(small.length === 0, `on a phone every tap target is at least 44 x 44 px${small.length ? `: ${small.slice(0, 6).map((t) => `${t.what} ${Math.round(t.w)}x${Math.round(t.h)}`).join('; ')}` : ''}`);
  await checkAxe(phone, check, 'the phone layout, every panel open');
  await phone.close();
}
