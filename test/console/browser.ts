/**
 * A real browser for the console's tests: Debian's chromium (TEST_CHROMIUM, which ./scripts/test
 * installs with apt-get and sets), driven by puppeteer-core over the DevTools protocol. No browser
 * is downloaded. Each page records what went wrong on it: console errors, uncaught exceptions,
 * failed requests and HTTP errors, so that a test can assert there were none.
 */
import { createRequire } from 'node:module';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { requirePath } from '../helpers/dependencies.js';

export const chromiumPath = (what: string) =>
  requirePath(what, 'TEST_CHROMIUM', 'file', "a Chromium executable (Debian's chromium package): TEST_CHROMIUM=$(command -v chromium); ./scripts/test installs it and sets it");

export function launchBrowser(executablePath: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath,
    headless: true,
    // Root in a container has no user namespace for the sandbox; the pages are our own console.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--window-size=1280,900'],
    defaultViewport: { width: 1280, height: 900 },
  });
}

export interface Problems {
  list: string[];
  clear(): void;
}

/** Everything that went wrong on `page` since the last clear(). */
export function watchProblems(page: Page): Problems {
  const list: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') list.push(`console error: ${m.text()} (${m.location().url ?? ''})`);
  });
  page.on('pageerror', (e) => list.push(`uncaught: ${(e as Error).message}`));
  page.on('requestfailed', (r) => list.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`));
  page.on('response', (r) => {
    if (r.status() >= 400) list.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return { list, clear: () => void list.splice(0) };
}

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function seriousViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: axePath });
  const violations = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(context: Document): Promise<{ violations: unknown[] }> } }).axe;
    return (await axe.run(document)).violations;
  })) as AxeViolation[];
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/**
 * The interactive elements that Tab never reached: tabs through the page from its top and
 * compares the focused elements with every visible link, button and form field.
 */
export async function unreachableByKeyboard(page: Page): Promise<string[]> {
  const expected = await page.evaluate(() => {
    const all = [...document.querySelectorAll<HTMLElement>('a[href], button, input, select, textarea, summary')];
    const visible = all.filter((el) => el.getClientRects().length > 0 && !(el as HTMLButtonElement).disabled && !el.closest('dialog:not([open])'));
    visible.forEach((el, i) => (el.dataset.kb = String(i)));
    (document.activeElement as HTMLElement | null)?.blur();
    window.scrollTo(0, 0);
    return visible.map((el) => `${el.tagName.toLowerCase()} "${(el.textContent || (el as HTMLInputElement).name || '').trim().slice(0, 40)}"`);
  });
  // Every page has its navigation at least: an empty list would be a check that cannot fail.
  if (expected.length === 0) throw new Error('no interactive element found on the page');
  const reached = new Set<number>();
  for (let i = 0; i < expected.length + 10; i++) {
    await page.keyboard.press('Tab');
    const kb = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.kb);
    if (kb !== undefined) reached.add(Number(kb));
  }
  return expected.filter((_e, i) => !reached.has(i));
}
