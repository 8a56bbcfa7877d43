import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { access, constants, mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packModel } from '../model/index.ts';
import { ARTIFACT, ENV } from '../names.ts';
import { createStore, parseStoreUri } from '../store/index.ts';
import type { ObjectInfo, ObjectStore } from '../store/index.ts';
import { TrainingError } from './errors.ts';
import { toHyperparameterStrings } from './hyperparameters.ts';
import { defaultJobName, validateJobName } from './job-name.ts';
import { FAILURE_REASON_MAX_BYTES, jobPaths, utf8Head } from './paths.ts';
import type { JobPaths } from './paths.ts';

/** Progress of the long steps of a local job. */
export type LocalJobProgress =
  | {
      readonly phase: 'download';
      readonly channel: string;
      readonly files: number;
      readonly totalFiles: number;
      readonly bytes: number;
      readonly totalBytes: number;
    }
  | { readonly phase: 'training' }
  | { readonly phase: 'upload'; readonly bytes: number; readonly totalBytes: number };

/** Options of {@link runLocalTrainingJob}. */
export interface LocalTrainingJobOptions {
  /** SageMaker-style job name. @default `slipway-mnist-<UTC timestamp>` */
  readonly jobName?: string;
  /** Training entrypoint file (.ts runs through tsx). @default the MNIST example's train entrypoint */
  readonly entry?: string;
  /** Channel name -> `s3://` or `file://` URI; every object under it is copied in. */
  readonly channels: Readonly<Record<string, string>>;
  /** Output prefix; the model lands at `<output>/<job-name>/output/model.tar.gz`. */
  readonly output: string;
  /** Hyperparameters; written to hyperparameters.json as strings. */
  readonly hyperparameters?: Readonly<Record<string, string | number | boolean>>;
  /** Object store for channels and output. @default createStore() */
  readonly store?: ObjectStore;
  /** Folder that holds job directories. @default `<os tmpdir>/slipway-jobs` */
  readonly workDir?: string;
  /** Keep the job directory after success (it is always kept after a failure). @default false */
  readonly keepJobDir?: boolean;
  /** Receives each line the entrypoint prints, prefixed `[<job-name>] `. @default write to stderr */
  readonly onLog?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Progress of channel copies, training start and upload. */
  readonly onProgress?: (progress: LocalJobProgress) => void;
  /**
   * Aborting stops the job: SIGTERM to the entrypoint's process group, SIGKILL to the group when the
   * entrypoint exits or `killGraceMs` has passed, whichever comes first.
   */
  readonly signal?: AbortSignal;
  /** Time the entrypoint gets to save a checkpoint after SIGTERM. @default 15000 */
  readonly killGraceMs?: number;
  /** Extra environment for the entrypoint. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Called once the entrypoint runs, with its pid: also the id of its process group, which holds
   * whatever it starts (so that a caller that dies can have the job stopped later).
   */
  readonly onStart?: (pid: number) => void;
}

/** What a successful local job produced. */
export interface LocalTrainingJobResult {
  readonly jobName: string;
  /** `<output>/<job-name>/output/model.tar.gz`, as SageMaker would write it. */
  readonly modelUri: string;
  /** The job directory (removed unless `keepJobDir`). */
  readonly jobDir: string;
  /** SHA-256 and size of the uploaded model.tar.gz. */
  readonly sha256: string;
  readonly bytes: number;
}

const here = fileURLToPath(import.meta.url);
const require = createRequire(import.meta.url);

/** The MNIST example's entrypoint next to this file: `.ts` from source, `.js` in dist. */
export function defaultTrainingEntry(): string {
  const ext = here.endsWith('.ts') ? '.ts' : '.js';
  return join(dirname(here), 'examples', 'mnist', `train${ext}`);
}

/** `<output>/<job-name>/output/model.tar.gz` (the path SageMaker uses). */
export function modelOutputUri(output: string, jobName: string): string {
  return `${output.endsWith('/') ? output : `${output}/`}${jobName}/output/${ARTIFACT.tarball}`;
}

function stopped(jobName: string, signal: AbortSignal | undefined): TrainingError {
  const reason: unknown = signal?.reason;
  const why = reason instanceof Error ? reason.message : 'aborted';
  return new TrainingError('TRAINING_STOPPED', `training job ${jobName} was stopped (${why})`);
}

/** Fails before training when the output cannot take the model (missing bucket, read-only folder, job name taken). */
async function probeOutput(store: ObjectStore, output: string, jobName: string): Promise<void> {
  const modelUri = modelOutputUri(output, jobName);
  const location = parseStoreUri(modelUri);
  if (location.scheme === 'file') {
    const dir = dirname(location.path);
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
    } catch (err) {
      throw new TrainingError(
        'TRAINING_OUTPUT_UNWRITABLE',
        `cannot write the model under ${output}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (existsSync(location.path)) {
      throw new TrainingError(
        'TRAINING_OUTPUT_UNWRITABLE',
        `${modelUri} already exists: pick another job name`,
      );
    }
    return;
  }
  // Listing the job's prefix proves the bucket exists and is reachable with these credentials, and
  // catches a reused job name (SageMaker refuses those too).
  const prefix = modelUri.slice(0, -`output/${ARTIFACT.tarball}`.length);
  try {
    for await (const existing of store.list(prefix)) {
      throw new TrainingError(
        'TRAINING_OUTPUT_UNWRITABLE',
        `${existing.uri} already exists: job name ${jobName} was used before, pick another`,
      );
    }
  } catch (err) {
    if (err instanceof TrainingError) throw err;
    throw new TrainingError(
      'TRAINING_OUTPUT_UNWRITABLE',
      `cannot write the model under ${output}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * An empty S3 object whose key ends in `/`: what the S3 console's "Create folder" makes. It holds no
 * data and cannot be a file in the channel directory, so it is not copied.
 */
function isFolderMarker(object: ObjectInfo): boolean {
  const location = parseStoreUri(object.uri);
  return location.scheme === 's3' && location.key.endsWith('/') && object.size === 0;
}

/** The object's path relative to the channel source, refusing keys that would escape the channel dir. */
function relativeKey(sourcePrefix: string, object: ObjectInfo): string {
  const location = parseStoreUri(object.uri);
  const full = location.scheme === 's3' ? location.key : location.path;
  let rel = full.slice(sourcePrefix.length).replace(/^\/+/, '');
  if (rel === '') rel = full.slice(full.lastIndexOf('/') + 1);
  const normal = normalize(rel);
  if (isAbsolute(normal) || normal === '..' || normal.startsWith(`..${sep}`) || normal === '.') {
    throw new TrainingError(
      'TRAINING_BAD_CONFIG',
      `refusing to copy ${object.uri}: its key escapes the channel`,
    );
  }
  return normal;
}

async function copyChannel(
  store: ObjectStore,
  name: string,
  source: string,
  paths: JobPaths,
  options: LocalTrainingJobOptions,
): Promise<void> {
  const location = parseStoreUri(source);
  const sourcePrefix = location.scheme === 's3' ? location.key : location.path;
  const objects: ObjectInfo[] = [];
  try {
    for await (const object of store.list(source)) if (!isFolderMarker(object)) objects.push(object);
  } catch (err) {
    throw new TrainingError(
      'TRAINING_MISSING_CHANNEL',
      `cannot list channel "${name}" at ${source}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (objects.length === 0) {
    throw new TrainingError(
      'TRAINING_EMPTY_CHANNEL',
      `channel "${name}" is empty: no objects under ${source} (check the URI)`,
    );
  }
  const totalBytes = objects.reduce((sum, o) => sum + o.size, 0);
  const dir = paths.channel(name);
  let bytes = 0;
  for (const [index, object] of objects.entries()) {
    options.signal?.throwIfAborted();
    const dest = join(dir, relativeKey(sourcePrefix, object));
    await mkdir(dirname(dest), { recursive: true });
    await pipeline(await store.get(object.uri), createWriteStream(dest), { signal: options.signal });
    bytes += object.size;
    options.onProgress?.({
      phase: 'download',
      channel: name,
      files: index + 1,
      totalFiles: objects.length,
      bytes,
      totalBytes,
    });
  }
}

async function writeConfig(paths: JobPaths, options: LocalTrainingJobOptions): Promise<void> {
  await Promise.all(
    [paths.configDir, paths.dataDir, paths.model, paths.output, paths.checkpoints].map((d) =>
      mkdir(d, { recursive: true }),
    ),
  );
  const channelConfig = {
    TrainingInputMode: 'File',
    S3DistributionType: 'FullyReplicated',
    RecordWrapperType: 'None',
  };
  await writeFile(
    paths.hyperparameters,
    JSON.stringify(toHyperparameterStrings(options.hyperparameters ?? {})),
  );
  await writeFile(
    paths.inputDataConfig,
    JSON.stringify(Object.fromEntries(Object.keys(options.channels).map((name) => [name, channelConfig]))),
  );
  await writeFile(
    paths.resourceConfig,
    JSON.stringify({ current_host: 'algo-1', hosts: ['algo-1'], current_instance_type: 'local' }),
  );
}

/** How long output still in the pipes is read after the entrypoint exits, before they are closed. */
const PIPE_DRAIN_MS = 2000;

/**
 * Kills the entrypoint's whole process group (its own children too). The group can outlive the
 * entrypoint: a helper it started keeps the group, so this does not stop at the entrypoint's exit.
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is gone. Otherwise fall back to the entrypoint alone, if it still runs.
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}

function runEntrypoint(
  jobName: string,
  entry: string,
  paths: JobPaths,
  options: LocalTrainingJobOptions,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const execArgv = entry.endsWith('.ts') ? ['--import', pathToFileURL(require.resolve('tsx')).href] : [];
  const child = spawn(process.execPath, [...execArgv, entry], {
    // SageMaker sets TRAINING_JOB_NAME in the container; a value inherited from this process would be another job's.
    env: { ...process.env, ...options.env, [ENV.jobRoot]: paths.root, [ENV.trainingJobName]: jobName },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so stopping the job also stops anything the entrypoint started.
    detached: true,
  });
  if (child.pid !== undefined) options.onStart?.(child.pid);
  const onLog = options.onLog ?? ((line: string) => void process.stderr.write(`${line}\n`));
  for (const stream of ['stdout', 'stderr'] as const) {
    createInterface({ input: child[stream], crlfDelay: Infinity }).on('line', (line) =>
      onLog(`[${jobName}] ${line}`, stream),
    );
  }
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    killGroup(child, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(child, 'SIGKILL'), options.killGraceMs ?? 15_000);
  };
  // If this process exits abruptly, do not leave a detached trainer running.
  const onExit = (): void => killGroup(child, 'SIGKILL');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  process.on('exit', onExit);
  return new Promise((resolve, reject) => {
    let drainTimer: NodeJS.Timeout | undefined;
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      options.signal?.removeEventListener('abort', onAbort);
      process.off('exit', onExit);
      resolve({ code, signal });
    };
    child.on('error', (err) => {
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      process.off('exit', onExit);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      // The job ends with its entrypoint, as a SageMaker container does: whatever it left running
      // (a helper holding our pipes open, one that ignores SIGTERM) is killed with it.
      killGroup(child, 'SIGKILL');
      // 'close' waits for every copy of the pipes; one held by a process outside the group must not
      // keep the job waiting, so read what is buffered for a moment, then close them.
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        done(code, signal);
      }, PIPE_DRAIN_MS);
      child.once('close', () => done(code, signal));
    });
  });
}

/**
 * The first {@link FAILURE_REASON_MAX_BYTES} of the failure file (what SageMaker shows), or '' when
 * there is none: the trainer wrote it, so its size is not ours to trust.
 */
async function readFailureReason(file: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch {
    return '';
  }
  try {
    // One byte more than is shown tells whether there was more.
    const buffer = Buffer.alloc(FAILURE_REASON_MAX_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const cut = bytesRead > FAILURE_REASON_MAX_BYTES;
    const text = utf8Head(buffer.subarray(0, bytesRead), FAILURE_REASON_MAX_BYTES);
    return cut ? `${text.trimEnd()} [truncated; the whole file is ${file}]` : text.trim();
  } catch {
    return '';
  } finally {
    await handle.close();
  }
}

/**
 * Runs a training job locally the way SageMaker would: a job directory laid out like /opt/ml,
 * channels copied in from `s3://` or `file://`, the entrypoint as a child process with its logs
 * prefixed by the job name, then model/ packed and uploaded to `<output>/<job-name>/output/model.tar.gz`.
 * Throws TrainingError with the failure file's reason when the entrypoint fails.
 *
 * @example
 * const { modelUri } = await runLocalTrainingJob({
 *   channels: { train: 'file:///data/mnist/' }, output: 's3://models/', hyperparameters: { epochs: 3 },
 * });
 */
export async function runLocalTrainingJob(options: LocalTrainingJobOptions): Promise<LocalTrainingJobResult> {
  const jobName = options.jobName === undefined ? defaultJobName() : validateJobName(options.jobName);
  const store = options.store ?? createStore();
  const entry = options.entry ?? defaultTrainingEntry();
  if (!existsSync(entry)) {
    throw new TrainingError('TRAINING_BAD_CONFIG', `training entrypoint ${entry} does not exist`);
  }
  for (const [name, uri] of Object.entries(options.channels)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || name.includes('..')) {
      throw new TrainingError('TRAINING_BAD_CONFIG', `invalid channel name ${JSON.stringify(name)}`);
    }
    parseStoreUri(uri);
  }
  const modelUri = modelOutputUri(options.output, jobName);
  parseStoreUri(modelUri);
  await probeOutput(store, options.output, jobName);

  const workDir = options.workDir ?? join(tmpdir(), 'slipway-jobs');
  const jobDir = join(workDir, jobName);
  if (await stat(jobDir).catch(() => undefined)) {
    throw new TrainingError(
      'TRAINING_BAD_CONFIG',
      `job directory ${jobDir} already exists: pick another job name`,
    );
  }
  const paths = jobPaths(jobDir);
  await writeConfig(paths, options);
  for (const [name, uri] of Object.entries(options.channels)) {
    try {
      await copyChannel(store, name, uri, paths, options);
    } catch (err) {
      if (options.signal?.aborted) throw stopped(jobName, options.signal);
      throw err;
    }
  }
  options.signal?.throwIfAborted();

  options.onProgress?.({ phase: 'training' });
  const result = await runEntrypoint(jobName, entry, paths, options);
  if (result.code !== 0) {
    const reason = await readFailureReason(paths.failure);
    if (options.signal?.aborted) throw stopped(jobName, options.signal);
    const how =
      result.code === null ? `killed by ${result.signal ?? 'a signal'}` : `exit code ${result.code}`;
    throw new TrainingError(
      'TRAINING_FAILED',
      `training job ${jobName} failed (${how}): ${reason || 'no failure file written'} (job directory kept at ${jobDir})`,
    );
  }

  const tarball = join(jobDir, ARTIFACT.tarball);
  const packed = await packModel(paths.model, tarball);
  await store.put(modelUri, createReadStream(tarball), {
    contentType: 'application/gzip',
    onProgress: (bytes) => options.onProgress?.({ phase: 'upload', bytes, totalBytes: packed.bytes }),
  });
  if (!(options.keepJobDir ?? false)) await rm(jobDir, { recursive: true, force: true });
  return { jobName, modelUri, jobDir, sha256: packed.sha256, bytes: packed.bytes };
}
