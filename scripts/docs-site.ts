import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DOCS_CSP } from '../src/infra/docs-site/docs-site.ts';
import { handler as cloudFrontRewrite } from '../src/infra/docs-site/url-rewrite.ts';

/** The repository root, derived from this file's location. */
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Where `npm run docs:build` writes the site. */
export const DEFAULT_DIST = join(REPO_ROOT, 'docs/.vitepress/dist');

/** Where Debian installs Chromium; the browser test and the screenshots drive it. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for headless Chromium on a machine with no network and no GPU. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Builds the VitePress site into `outDir` by running the VitePress CLI as a child
 * process (a Vite build inside a Vitest worker would share its module graph).
 */
export async function buildDocs(outDir: string = DEFAULT_DIST): Promise<void> {
  const cli = join(REPO_ROOT, 'node_modules/vitepress/bin/vitepress.js');
  await promisify(execFile)(process.execPath, [cli, 'build', 'docs', '--outDir', outDir], {
    cwd: REPO_ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
}

/**
 * Maps a request path to the object key the docs distribution serves, by running the
 * deployed CloudFront Function itself: a directory URL (`/a/`) or an extension-less one
 * (`/a`, `/v1.2/a`) means that directory's `index.html`.
 */
export function objectKeyForPath(pathname: string): string {
  return cloudFrontRewrite({ request: { uri: pathname } }).uri;
}

/** A running loopback server for a built site. */
export interface DocsServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves a built site on 127.0.0.1 with an ephemeral port the way CloudFront serves it:
 * paths mapped by the docs CloudFront Function, the distribution's Content-Security-
 * Policy on every response (so a violation shows up as a browser console error), and
 * the site's own 404 page for a missing object.
 */
export async function serveDocs(root: string = DEFAULT_DIST): Promise<DocsServer> {
  const base = resolve(root);
  const server = createServer((req, res) => {
    void (async () => {
      let pathname: string;
      try {
        pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
      } catch {
        res.writeHead(400).end('bad request path');
        return;
      }
      const file = resolve(base, `.${objectKeyForPath(pathname)}`);
      const inside = file === base || file.startsWith(base + sep);
      const found = inside ? await stat(file).catch(() => undefined) : undefined;
      const status = found?.isFile() === true ? 200 : 404;
      const target = status === 200 ? file : join(base, '404.html');
      res.writeHead(status, {
        'content-type': CONTENT_TYPES[extname(target)] ?? 'application/octet-stream',
        'content-security-policy': DOCS_CSP,
        'x-content-type-options': 'nosniff',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      createReadStream(target)
        .on('error', () => res.destroy())
        .pipe(res);
    })();
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', done);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((done, fail) => {
        server.closeAllConnections();
        server.close((err) => (err ? fail(err) : done()));
      }),
  };
}
