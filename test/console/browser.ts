/**
 * Headless Chromium for the console's browser tests, driven over the DevTools protocol by playwright-core (which
 * downloads no browser of its own): Debian's `chromium` at /usr/bin/chromium (or CHROMIUM_PATH). Failing that,
 * the package is installed when the process may (root, apt-get present); otherwise the error says what to install.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { aptInstall, canAptInstall } from '../helpers/apt';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'] as const;

function runs(path: string): boolean {
  return (
    existsSync(path) && spawnSync(path, ['--version'], { stdio: 'ignore', timeout: 60_000 }).status === 0
  );
}

let found: string | undefined;

/**
 * The path of a Chromium that runs, installing Debian's `chromium` when none does and the process runs as root with
 * apt-get. Throws, naming the package, when none can be had.
 */
export function chromiumPath(): string {
  if (found) return found;
  const given = process.env.CHROMIUM_PATH;
  for (const path of given ? [given, ...CANDIDATES] : CANDIDATES) {
    if (runs(path)) {
      found = path;
      return path;
    }
  }
  if (canAptInstall()) {
    aptInstall('chromium', () => runs('/usr/bin/chromium'));
    if (runs('/usr/bin/chromium')) {
      found = '/usr/bin/chromium';
      return found;
    }
  }
  throw new Error(
    'The console tests need Chromium: install it, e.g. `apt-get install -y chromium` on Debian/Ubuntu, ' +
      'or set CHROMIUM_PATH to a Chromium or Chrome binary.',
  );
}

/** A headless browser, and how to end it. */
export interface TestBrowser {
  readonly browser: Browser;
  /** A new page (own context, 1280×900) whose page errors and console errors are collected in `problems`. */
  page(): Promise<{ page: Page; problems: string[] }>;
  close(): Promise<void>;
}

/** Starts headless Chromium (no sandbox, no GPU, no background traffic to the network). */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  return {
    browser,
    async page() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      return { page, problems };
    },
    close: () => browser.close(),
  };
}

/**
 * Takes a screenshot of `page` for docs/ (the PNG must be a real image). It is written when docs/ has none under
 * that name, or with MAAS_UPDATE_SCREENSHOTS=1; otherwise the committed one stays, so a test run leaves the
 * working tree as it found it (timestamps and ports differ from run to run).
 */
export async function saveScreenshot(page: Page, path: string, fullPage = false): Promise<void> {
  const png = await page.screenshot({ fullPage });
  if (png.length < 1000 || png.subarray(1, 4).toString('latin1') !== 'PNG') {
    throw new Error(`the screenshot for ${path} is not an image (${png.length} bytes)`);
  }
  if (!existsSync(path) || process.env.MAAS_UPDATE_SCREENSHOTS === '1') writeFileSync(path, png);
}
