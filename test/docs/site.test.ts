import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildDocs,
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  serveDocs,
  type DocsServer,
} from '../../scripts/docs-site.ts';
import { builtAssetKeys } from '../../scripts/expire-docs-assets.ts';

/** Pages the issue asks for; the site may have more, and every built page is visited. */
const REQUIRED_PAGES = [
  '/',
  '/architecture/',
  '/quick-start/',
  '/local-twin/',
  '/deploy/',
  '/ci-cd/',
  '/training/',
  '/serving/',
  '/operations/',
  '/security/',
  '/cost/',
];

interface PageVisit {
  readonly path: string;
  readonly status: number | undefined;
  readonly errors: string[];
  readonly links: string[];
  readonly h1: string;
  readonly diagrams: { src: string; width: number; height: number }[];
}

let outDir: string;
let server: DocsServer;
let browser: Browser | undefined;
let pages: string[] = [];
const visits: PageVisit[] = [];

async function builtPages(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name === 'index.html')
    .map((e) => {
      const dir = relative(root, e.parentPath).split(sep).join('/');
      return dir === '' ? '/' : `/${dir}/`;
    })
    .sort();
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM_PATH}: install Debian's package (apt-get install -y chromium); bash .ci/run does this in CI`,
    );
  }
  outDir = await mkdtemp(join(tmpdir(), 'slipway-docs-'));
  await buildDocs(outDir);
  server = await serveDocs(outDir);
  pages = await builtPages(outDir);
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS] });
  const context = await browser.newContext();
  const origin = new URL(server.url).origin;
  const visitPage = async (path: string): Promise<void> => {
    const errors: string[] = [];
    const page = await context.newPage();
    // The site must load nothing from other origins (CloudFront sends a strict CSP, and
    // CI has no network): any such request is recorded as an error and aborted.
    await page.route('**/*', async (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:') || url.startsWith('blob:'))
        return route.continue();
      errors.push(`external request: ${url}`);
      return route.abort();
    });
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => {
      if (req.url().startsWith(origin)) errors.push(`request failed: ${req.url()}`);
    });
    const response = await page.goto(server.url + path, { waitUntil: 'networkidle' });
    // The test runs without the DOM lib, so browser-side code is passed as a string.
    const links = await page.evaluate<string[]>(
      'Array.from(document.querySelectorAll("a[href]"), (a) => a.href)',
    );
    const h1 = (await page.locator('h1').first().textContent()) ?? '';
    const diagrams = await page.evaluate<PageVisit['diagrams']>(
      `Array.from(document.querySelectorAll('img[src$="architecture.svg"]'), (i) =>
        ({ src: i.currentSrc, width: i.naturalWidth, height: i.naturalHeight }))`,
    );
    visits.push({ path, status: response?.status(), errors, links, h1, diagrams });
    await page.close();
  };
  // A few pages at a time: networkidle waits half a second of quiet per page.
  const queue = [...pages];
  const visitNext = async (): Promise<void> => {
    for (let path = queue.shift(); path !== undefined; path = queue.shift()) await visitPage(path);
  };
  await Promise.all([visitNext(), visitNext(), visitNext(), visitNext()]);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

function visit(path: string): PageVisit {
  const found = visits.find((v) => v.path === path);
  if (found === undefined) throw new Error(`page ${path} was not built`);
  return found;
}

describe('the docs site in headless Chromium', () => {
  it('builds every page the issue asks for', () => {
    expect(pages).toEqual(expect.arrayContaining(REQUIRED_PAGES));
  });

  it('serves every page with status 200 and a heading', () => {
    for (const v of visits) {
      expect(v.status, v.path).toBe(200);
      expect(v.h1.trim(), v.path).not.toBe('');
    }
  });

  it('logs no console errors and fetches nothing from other origins on any page', () => {
    const problems = visits.flatMap((v) => v.errors.map((e) => `${v.path}: ${e}`));
    expect(problems).toEqual([]);
  });

  it('has no broken internal links or anchors', async () => {
    const origin = new URL(server.url).origin;
    const targets = new Set(visits.flatMap((v) => v.links).filter((href) => href.startsWith(origin)));
    expect(targets.size).toBeGreaterThan(REQUIRED_PAGES.length);
    const html = new Map<string, { status: number; body: string }>();
    const broken: string[] = [];
    for (const href of targets) {
      const url = new URL(href);
      const key = url.pathname;
      if (!html.has(key)) {
        const res = await fetch(origin + key);
        html.set(key, { status: res.status, body: await res.text() });
      }
      const page = html.get(key)!;
      if (page.status !== 200) {
        broken.push(`${href} -> ${page.status}`);
        continue;
      }
      const anchor = decodeURIComponent(url.hash.slice(1));
      if (anchor !== '' && !page.body.includes(`id="${anchor}"`)) broken.push(`${href} -> no #${anchor}`);
    }
    expect(broken).toEqual([]);
  });

  it('renders the architecture diagram as a picture on the home and architecture pages', () => {
    for (const path of ['/', '/architecture/']) {
      const diagrams = visit(path).diagrams;
      expect(diagrams, path).toHaveLength(1);
      expect(diagrams[0]!.width, path).toBeGreaterThan(0);
      expect(diagrams[0]!.height, path).toBeGreaterThan(0);
    }
  });

  it('names every file under assets/ by its content hash, as docs.yml’s immutable caching assumes', async () => {
    const assets = [...(await builtAssetKeys(outDir))];
    expect(assets.length).toBeGreaterThan(REQUIRED_PAGES.length);
    expect(assets.filter((key) => !/\.[\w-]{8}(\.lean)?\.[a-z0-9]+$/.test(key))).toEqual([]);
  });

  it('answers an unknown page with 404 and the site’s own not-found page', async () => {
    const page = await browser!.newPage();
    const response = await page.goto(`${server.url}/no-such-page/`, { waitUntil: 'networkidle' });
    expect(response?.status()).toBe(404);
    expect(await page.locator('.NotFound').textContent()).toMatch(/page not found/i);
    await page.close();
  });
});
