// Starting the service's worker threads (inference and JSON parsing) and lowering their priority.
import { existsSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** A worker script next to this module, by base name: .ts under tsx (tests, CLI from source), .js in dist/. */
export function workerScript(name: string): URL {
  const ts = new URL(`./${name}.ts`, import.meta.url);
  return existsSync(fileURLToPath(ts)) ? ts : new URL(`./${name}.js`, import.meta.url);
}

/**
 * Starts a worker. From TypeScript sources it boots through tsx's `tsImport` (a plain
 * `--import tsx` in a worker's execArgv does not reach the worker's own entry module on Node 20).
 */
export function startWorker(url: URL, workerData: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(url.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(boot, { eval: true, workerData });
}

/**
 * Gives the calling thread a lower CPU priority than the event loop (Linux: a thread's nice is
 * set by its thread id, read from /proc/thread-self). Threads it starts later inherit it. Where
 * that is not possible (another OS) the thread simply runs at the process's priority.
 */
export function lowerThreadPriority(nice: number): void {
  if (nice <= 0) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // not Linux, or /proc unavailable
  }
}
