// What every browser script here shares after launching Chromium: the check reporter (a line
// per check, the failures counted, the exit code) and the page helpers that open a panel and
// wait for a run to end.

/** A reporter: `check(ok, what)` prints and records; `fail(error)` records a thrown error;
 * `finish(name)` prints the outcome and exits 1 if anything failed. */
export function reporter() {
  const failures = [];
  return {
    failures,
    check(ok, what) {
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
      if (!ok) failures.push(what);
    },
    fail(e) {
      failures.push(String(e));
      console.error(e);
    },
    finish(name) {
      if (failures.length) {
        console.error(`${failures.length} check(s) failed`);
        process.exit(1);
      }
      console.log(`${name}: all checks passed`);
    },
  };
}

/** Opens one of the page's panels (a <details> that opens on demand) and waits until it is. */
export async function openPanel(page, id) {
  const panel = page.getByTestId(`panel-${id}`);
  await panel.evaluate((d) => { d.open = true; });
  await panel.locator('.panel-body').waitFor({ state: 'visible' });
}

/** Waits until no explanation is running: the Explain button is back (not "Explaining…"). */
export async function idle(page, timeout = 600_000) {
  await page.getByTestId('run').filter({ hasText: /^Explain$/ }).waitFor({ timeout });
}
