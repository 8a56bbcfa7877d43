/**
 * `npm run docs:screenshots`: builds the docs site, serves it on loopback, and saves
 * PNG screenshots of the home page and the architecture page with headless Chromium.
 *
 * Usage: npm run docs:screenshots [-- --no-build] [-- --out <dir>]
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { buildDocs, CHROMIUM_ARGS, CHROMIUM_PATH, DEFAULT_DIST, REPO_ROOT, serveDocs } from './docs-site.ts';

const SHOTS = [
  { path: '/', file: 'home.png' },
  { path: '/architecture/', file: 'architecture.png' },
] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string', default: join(REPO_ROOT, 'docs/.vitepress/screenshots') },
    },
  });
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium is missing at ${CHROMIUM_PATH}: apt-get install -y chromium`);
  }
  if (!values['no-build']) {
    console.log('building the docs site...');
    await buildDocs(DEFAULT_DIST);
  } else if (!existsSync(join(DEFAULT_DIST, 'index.html'))) {
    throw new Error(`no built site in ${DEFAULT_DIST}: run without --no-build`);
  }
  const outDir = resolve(values.out);
  await mkdir(outDir, { recursive: true });
  const server = await serveDocs(DEFAULT_DIST);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    for (const shot of SHOTS) {
      await page.goto(server.url + shot.path, { waitUntil: 'networkidle' });
      const file = join(outDir, shot.file);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`saved ${file}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
