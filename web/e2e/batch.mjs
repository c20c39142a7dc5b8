// End-to-end test of browsing a batch output in the page (headless Chromium): the JSONL file
// and its scene images are picked, the list shows every line, a tag filters it, the score sort
// orders it, and a clicked line shows its answer, head grid and map with the batch's numbers.
// No model is needed for this (the numbers are the batch's). Screenshots go to target/e2e/batch/.
//
// usage: node web/e2e/batch.mjs DIST_DIR BATCH_JSONL IMAGE...
import { launch } from './chromium.mjs';
import { serve } from './serve.mjs';
import { reporter, openPanel } from './report.mjs';
import fs from 'node:fs';

const [dist, batchPath, ...images] = process.argv.slice(2);
if (!dist || !batchPath || images.length === 0) {
  console.error('usage: node web/e2e/batch.mjs DIST_DIR BATCH_JSONL IMAGE...');
  process.exit(2);
}
const out = 'target/e2e/batch';
fs.mkdirSync(out, { recursive: true });
const lines = fs.readFileSync(batchPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const explained = lines.filter((l) => !l.error);

const { server, base } = await serve(dist, {}, {});
const browser = await launch('llava-lens-e2e-batch-');
const { check, fail, finish } = reporter();
try {
  const page = await browser.newPage();
  await page.goto(base);
  await openPanel(page, 'batch');
  await page.getByTestId('batch-file').setInputFiles(batchPath);
  await page.getByTestId('batch-images').setInputFiles(images);
  await page.getByTestId('batch-list').waitFor({ timeout: 60_000 });
  const rows = page.locator('[data-testid^="batch-row-"]');
  check(await rows.count() === lines.length, `the list shows every line (${await rows.count()} of ${lines.length})`);
  const summary = await page.getByTestId('batch-summary').innerText();
  check(summary.includes(`${lines.length} lines`) && summary.includes(`${images.length} image files`), `the summary counts lines and images: "${summary}"`);

  // A tag keeps the lines that carry it.
  const tag = explained[0].example.tags[0];
  await page.getByTestId('batch-tag').selectOption(tag);
  const tagged = lines.filter((l) => (l.example?.tags ?? []).includes(tag)).length;
  check(await rows.count() === tagged, `tag "${tag}" keeps its ${tagged} lines (${await rows.count()})`);
  await page.getByTestId('batch-tag').selectOption('');

  // Sorted by the best head's score, highest first.
  await page.getByTestId('batch-order').selectOption('best');
  const ids = await rows.evaluateAll((rs) => rs.map((r) => r.dataset.testid.replace('batch-row-', '')));
  const want = [...explained].sort((a, b) => b.best_head.score - a.best_head.score).map((l) => l.id);
  check(JSON.stringify(ids.slice(0, want.length)) === JSON.stringify(want), `sorted by best-head score: ${ids.join(', ')}`);

  // The top line, shown with the single explanation's views and the batch's numbers.
  const top = explained.find((l) => l.id === want[0]);
  await page.getByTestId(`batch-row-${top.id}`).click();
  await page.getByTestId('result').waitFor({ timeout: 30_000 });
  const caption = await page.getByTestId('map-caption').innerText();
  check(caption.includes(`best head ${top.best_head.layer}.${top.best_head.head}`), `the map is the line's best head: "${caption}"`);
  const answer = await page.getByTestId('answer').innerText();
  const word = top.top[0].text.replace(/^[▁Ġ]/, '');
  check(answer.includes(top.example.answer_prefix) && answer.endsWith(word), `the answer is the line's: "${answer}"`);
  const cell = await page.getByTestId(`head-${top.best_head.layer}-${top.best_head.head}`).getAttribute('title');
  check(cell.includes(top.best_head.score.toFixed(4).replace(/^(?=\d)/, '+')), `the head grid holds the line's score: "${cell}"`);
  const drawn = await page.getByTestId('map').evaluate((c) => c.width > 0 && c.height > 0);
  check(drawn, 'the map is drawn over the image');
  const json = JSON.parse(await page.getByTestId('json').textContent()); // inside a closed <details>
  check(json.best_head.layer === top.best_head.layer && json.patch_scores.length === top.patch_scores.length, 'the JSON view holds the line');
  await page.screenshot({ path: `${out}/1-batch-line.png`, fullPage: true });

  // An error line says why, instead of showing anything.
  const failed = lines.find((l) => l.error);
  if (failed) {
    await page.getByTestId(`batch-row-${failed.id}`).click();
    const err = await page.getByTestId('error').filter({ hasText: failed.id }).innerText({ timeout: 30_000 });
    check(err.includes(failed.id) && err.includes('the batch recorded an error'), `an error line says so: "${err}"`);
  }
} catch (e) {
  fail(e);
} finally {
  await browser.close();
  server.close();
}
finish('e2e batch');
