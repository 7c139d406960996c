// Debian's chromium driven by playwright-core (no browser downloads here), with a fresh profile
// per suite and a record of every URL the page asks for.
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.FLOTILLA_CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Every URL the browser requested or navigated to, in order. */
  urls: string[];
  /** Console errors and uncaught page errors, for the assertion that there are none. */
  problems: string[];
  close(): Promise<void>;
}

export async function openBrowser(viewport = { width: 1280, height: 860 }): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no chromium at ${CHROMIUM}: \`apt-get install chromium\` (./setup.sh test installs it) or set FLOTILLA_CHROMIUM`);
  const profile = mkdtempSync(join(tmpdir(), "flotilla-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  const urls: string[] = [];
  const problems: string[] = [];
  context.on("request", (r) => urls.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  // In-app navigations (history.pushState) are no requests; record them as well.
  page.on("framenavigated", (f) => urls.push(f.url()));
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Failed requests the console shows to the user on purpose (the bad-token 401) are logged by
    // chromium as console errors too; those are expected, anything else is not.
    if (m.type() === "error" && !/status of 40[0-9]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return {
    context,
    page,
    urls,
    problems,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
