import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ENV } from '../names.ts';
import { CONTROL_STATUS_PATH } from './load-balancer.ts';
import { StateDirError } from './errors.ts';
import type { Deployment } from './supervisor.ts';

/** Default state directory, relative to the working directory. */
export const DEFAULT_STATE_DIR = '.slipway';

/** Where a running twin can be reached; written at start, removed on a clean stop. */
export interface TwinRuntimeFile {
  readonly pid: number;
  readonly startedAt: string;
  /** Load balancer (and control API under `/_slipway/`) base URL. */
  readonly url: string;
  readonly port: number;
  readonly s3Endpoint: string;
  readonly buckets: { readonly data: string; readonly models: string };
  /** Process ids of the inference tasks (for stale-state cleanup after a crash of the twin). */
  readonly taskPids: readonly number[];
  /** The first-run trainer while it runs (detached, so it outlives a twin that dies). */
  readonly trainer?: TrainerRecord;
}

/** A training job's process group, and the job name its processes carry in TRAINING_JOB_NAME. */
export interface TrainerRecord {
  readonly pgid: number;
  readonly jobName: string;
}

/** What survives a restart: the deployment history (the models live in the S3 directory). */
export interface TwinStateFile {
  readonly deployments: readonly Deployment[];
}

/** Paths inside a state directory. */
export interface StatePaths {
  readonly root: string;
  readonly runtime: string;
  readonly state: string;
  readonly s3: string;
  readonly logs: string;
  readonly jobs: string;
  readonly data: string;
}

/** The layout of a state directory. */
export function statePaths(stateDir: string): StatePaths {
  const root = resolve(stateDir);
  return {
    root,
    runtime: join(root, 'twin.json'),
    state: join(root, 'state.json'),
    s3: join(root, 's3'),
    logs: join(root, 'logs'),
    jobs: join(root, 'jobs'),
    data: join(root, 'staging'),
  };
}

/** True while a process with this pid exists (and is not a zombie we could reap). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reads twin.json; undefined when absent, a StateDirError when unreadable. */
export async function readRuntimeFile(paths: StatePaths): Promise<TwinRuntimeFile | undefined> {
  let text: string;
  try {
    text = await readFile(paths.runtime, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateDirError(`cannot read ${paths.runtime}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = parseJson(text);
  if (!isRuntimeFile(parsed)) {
    throw new StateDirError(`${paths.runtime} is corrupt (not a twin runtime record)`);
  }
  return parsed;
}

/** What {@link claimStateDir} found and did. */
export interface ClaimResult {
  /** Human-readable notes on recovered problems (stale or corrupt files). */
  readonly notes: string[];
  readonly history: readonly Deployment[];
}

/**
 * Takes ownership of a state directory: refuses when a live twin owns it, cleans up after a
 * twin that died without stopping (kills its leftover tasks), and sets corrupt files aside.
 */
export async function claimStateDir(paths: StatePaths): Promise<ClaimResult> {
  await mkdir(paths.root, { recursive: true });
  await Promise.all([paths.s3, paths.logs, paths.jobs].map((d) => mkdir(d, { recursive: true })));
  const notes: string[] = [];
  let runtime: TwinRuntimeFile | undefined;
  try {
    runtime = await readRuntimeFile(paths);
  } catch (err) {
    const aside = await setAside(paths.runtime);
    notes.push(`${(err as Error).message}; moved it to ${aside} and started fresh`);
  }
  if (runtime) {
    if (processAlive(runtime.pid) && (await isRecordedTwin(runtime))) {
      throw new StateDirError(
        `another local twin (pid ${runtime.pid}) is running on ${runtime.url} with state in ${paths.root}; ` +
          'stop it first (Ctrl-C in its terminal), or use --state-dir <dir> for a second one; ' +
          `if no twin runs there, delete ${paths.runtime}`,
      );
    }
    const leftovers = runtime.taskPids.filter((pid) => processAlive(pid) && looksLikeTask(pid));
    for (const pid of leftovers) process.kill(pid, 'SIGTERM');
    const trainer = runtime.trainer && isTrainer(runtime.trainer) ? runtime.trainer : undefined;
    if (trainer) killGroup(trainer.pgid);
    notes.push(
      `recovered from a twin that did not stop cleanly (pid ${runtime.pid})` +
        (leftovers.length ? `; stopped its leftover tasks (pids ${leftovers.join(', ')})` : '') +
        (trainer ? `; stopped its training job ${trainer.jobName} (process group ${trainer.pgid})` : ''),
    );
    await rm(paths.runtime, { force: true });
  }
  let history: readonly Deployment[] = [];
  try {
    const text = await readFile(paths.state, 'utf8');
    const parsed = parseJson(text);
    if (!isStateFile(parsed)) throw new StateDirError(`${paths.state} is corrupt (no deployment list)`);
    history = parsed.deployments;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      const aside = await setAside(paths.state);
      notes.push(
        `${err instanceof StateDirError ? err.message : `cannot read ${paths.state}`}; moved it to ${aside}; ` +
          'the deployment history starts over (models in the local S3 store are kept)',
      );
    }
  }
  return { notes, history };
}

/** Writes a JSON file atomically (write to a temp file, then rename), so a crash never leaves half a file. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
  await rename(tmp, path);
}

async function setAside(path: string): Promise<string> {
  const aside = `${path}.corrupt-${Date.now()}`;
  await rename(path, aside).catch(() => undefined);
  return aside;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRuntimeFile(v: unknown): v is TwinRuntimeFile {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r['pid'] === 'number' &&
    typeof r['url'] === 'string' &&
    typeof r['s3Endpoint'] === 'string' &&
    Array.isArray(r['taskPids'])
  );
}

function isStateFile(v: unknown): v is TwinStateFile {
  if (typeof v !== 'object' || v === null) return false;
  const list = (v as Record<string, unknown>)['deployments'];
  return (
    Array.isArray(list) &&
    list.every(
      (d: unknown) =>
        typeof d === 'object' &&
        d !== null &&
        typeof (d as Record<string, unknown>)['id'] === 'string' &&
        typeof (d as Record<string, unknown>)['modelUri'] === 'string' &&
        typeof (d as Record<string, unknown>)['revision'] === 'string',
    )
  );
}

// A recycled pid may belong to an unrelated process: only touch ones that look like ours.
function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined;
  }
}

/**
 * Whether the live process `runtime.pid` is the twin that wrote `runtime`: its control API answers
 * with that pid or, for a twin too busy to answer, its command is `slipway up`. A pid the system
 * gave to another process since (any other node process, say) is neither. Without /proc to read
 * the command from, a live pid counts as the twin. The command is read first: it costs no wait,
 * where asking a hung twin takes up to the request's timeout.
 */
async function isRecordedTwin(runtime: TwinRuntimeFile): Promise<boolean> {
  const cmd = cmdline(runtime.pid);
  if (cmd === undefined || (/slipway/.test(cmd) && /\sup(\s|$)/.test(cmd))) return true;
  try {
    const res = await fetch(`${runtime.url}${CONTROL_STATUS_PATH}`, { signal: AbortSignal.timeout(2_000) });
    const status = (await res.json()) as { twin?: { pid?: unknown } };
    return status.twin?.pid === runtime.pid;
  } catch {
    // Nothing answers there, or something that is not a twin.
    return false;
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGTERM');
  } catch {
    // ESRCH: the group ended meanwhile.
  }
}

// The group's leader still runs with the job's name: its TRAINING_JOB_NAME is the one the runner set.
function isTrainer(trainer: TrainerRecord): boolean {
  if (!Number.isInteger(trainer.pgid) || trainer.pgid <= 1) return false;
  try {
    const environ = readFileSync(`/proc/${trainer.pgid}/environ`, 'utf8').split('\0');
    return environ.includes(`${ENV.trainingJobName}=${trainer.jobName}`);
  } catch {
    return false;
  }
}

function looksLikeTask(pid: number): boolean {
  const cmd = cmdline(pid);
  return cmd !== undefined && /\bserve\b|slipway|fake-server/.test(cmd);
}
