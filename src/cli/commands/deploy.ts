import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { SlipwayError, UsageError } from '../../errors.ts';
import { toDeploymentInfo } from '../../local/local-deploy-target.ts';
import { LOCAL_S3_CREDENTIALS } from '../../local/s3-server.ts';
import { ARTIFACT, ROLLOUT_RETRY_ATTEMPTS, STACK_OUTPUTS } from '../../names.ts';
import type {
  DeployTarget,
  DeploymentInfo,
  PinnedModel,
  ServiceStatus,
} from '../../rollout/deploy-target.ts';
import type { SkipReason } from '../../rollout/decision.ts';
import { followDeployment } from '../../rollout/operations.ts';
import { loggedOutcome, type LoggedObject, type LoggedOutcome } from '../../rollout/outcome-log.ts';
import { isPinnableKey } from '../../shared/s3-pin.ts';
import { createStore } from '../../store/create-store.ts';
import type { ObjectInfo, ObjectStore } from '../../store/types.ts';
import { looksLikeUri, parseStoreUri } from '../../store/uri.ts';
import type { CloudContext, LogTail } from '../cloud.ts';
import { printJson, secondsOption } from '../options.ts';
import { progressPrinter, resolveWhere, whereOptions } from '../targets.ts';
import type { Where, WhereFlags } from '../targets.ts';

interface DeployFlags extends WhereFlags {
  key?: string;
  wait?: boolean;
  timeout: string;
  json?: boolean;
}

/** Registers `slipway deploy`: publish a model; the upload event rolls it out. */
export function registerDeploy(program: Command): void {
  whereOptions(
    program
      .command('deploy')
      .argument('<model>', 'a model.tar.gz file, or a file:// or s3:// URI of one')
      .description(
        'Upload a model.tar.gz to the models bucket. The upload event starts the rollout by itself; ' +
          'with --wait, follow it until the new model serves (exit 0; also when that very object is ' +
          'already live) or the rollout fails, rejects or skips the upload (exit 1, naming why; with --cloud ' +
          "read from the rollout function's log, which needs logs:FilterLogEvents).",
      ),
  )
    .option(
      '--key <key>',
      `object key in the models bucket (must end in ${ARTIFACT.tarball}, without "?" or "#")`,
    )
    .option('--wait', 'follow the rollout until it completes or fails')
    .option('--timeout <seconds>', 'give up waiting after this long', '900')
    .option('--json', 'print machine-readable JSON')
    .action(async (model: string, flags: DeployFlags) => {
      const timeoutMs = secondsOption(flags.timeout, '--timeout');
      const key = flags.key ?? `manual/${new Date().toISOString().replace(/[-:.]/g, '')}/${ARTIFACT.tarball}`;
      if (!key.endsWith(ARTIFACT.tarball) || key.startsWith('/')) {
        throw new UsageError(
          `--key "${key}" must be a relative key ending in ${ARTIFACT.tarball}, or the rollout never fires`,
        );
      }
      if (!isPinnableKey(key)) {
        throw new UsageError(
          `--key "${key}" contains "?" or "#", which the rollout cannot pin in MODEL_URI (it rejects the upload); choose a key without them`,
        );
      }
      const source = await checkSource(model);
      const where = await resolveWhere(flags);
      const { store, bucket } = destination(where);
      const { body, size } = await openSource(source, where);
      const uri = `s3://${bucket}/${key}`;
      const tty = process.stderr.isTTY && !flags.json;
      // Only what this upload causes counts: the live deployment, or an earlier one (rolled back)
      // of the same object, must not be taken for the rollout of this upload.
      const before = flags.wait ? await snapshot(where) : undefined;
      const uploaded = await store.put(uri, body, {
        contentType: 'application/gzip',
        onProgress: (bytes) => {
          if (tty && size) process.stderr.write(`\r  uploading ${Math.round((100 * bytes) / size)}%   `);
        },
      });
      if (tty) process.stderr.write('\n');
      if (!flags.json)
        process.stdout.write(`uploaded ${uploaded.uri} (${uploaded.size} bytes); the rollout follows\n`);
      if (!before) {
        if (flags.json) printJson({ uri: uploaded.uri, etag: uploaded.etag, size: uploaded.size });
        return;
      }
      const deadline = Date.now() + timeoutMs;
      const deployment = await findDeployment(where, key, uploaded, before, {
        deadline,
        intervalMs: where.kind === 'cloud' ? 5_000 : 250,
      });
      if ('kind' in deployment) {
        const reason = `${noRolloutLabel(deployment)}: ${deployment.detail}`;
        if (flags.json) printJson({ uri: uploaded.uri, outcome: deployment.kind, reason });
        else process.stdout.write(`no rollout: ${reason}\n`);
        // Only a duplicate means the upload is what serves; any other skip leaves another model live.
        if (!(deployment.kind === 'skipped' && deployment.reason === 'duplicate')) {
          throw new SlipwayError(
            `ROLLOUT_${deployment.kind.toUpperCase()}`,
            `${noRolloutSentence(uploaded.uri, deployment)}; see \`npx slipway status\``,
          );
        }
        return;
      }
      const followed = await followDeployment(where.target, deployment.id, {
        intervalMs: where.kind === 'cloud' ? 15_000 : 300,
        timeoutMs: Math.max(1_000, deadline - Date.now()),
        onProgress: progressPrinter(!flags.json),
      });
      if (flags.json) {
        printJson({
          uri: uploaded.uri,
          deploymentId: deployment.id,
          outcome: followed.outcome,
          reason: followed.reason,
        });
      } else {
        process.stdout.write(`rollout ${followed.outcome}${followed.reason ? `: ${followed.reason}` : ''}\n`);
      }
      if (followed.outcome !== 'completed') {
        throw new SlipwayError(
          'ROLLOUT_FAILED',
          `the rollout of ${uploaded.uri} ${followed.outcome}; see \`npx slipway status\``,
        );
      }
    });
}

function destination(where: Where): { store: ObjectStore; bucket: string } {
  if (where.kind === 'cloud') return { store: where.cloud.store, bucket: where.cloud.modelsBucket };
  const runtime = where.client.runtime;
  return {
    store: createStore({ endpoint: runtime.s3Endpoint, credentials: { ...LOCAL_S3_CREDENTIALS } }),
    bucket: runtime.buckets.models,
  };
}

/** The model to upload: an object already in S3, or a local file. */
type Source = { readonly s3Uri: string } | { readonly path: string; readonly size: number };

/**
 * Checks the <model> argument before anything connects. A URI goes through parseStoreUri, so
 * `file://relative/x` (a host, not a path) or `s3:/x` gets the store's "bad storage URI" message.
 */
async function checkSource(model: string): Promise<Source> {
  let path: string;
  if (looksLikeUri(model)) {
    const location = parseStoreUri(model);
    if (location.scheme === 's3') return { s3Uri: model };
    path = location.path;
  } else {
    path = resolve(model);
  }
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile())
    throw new UsageError(`${model} is not a file; pass a ${ARTIFACT.tarball} or an s3:// URI`);
  if (info.size === 0) throw new UsageError(`${model} is empty; a model.tar.gz holds at least model.onnx`);
  return { path, size: info.size };
}

async function openSource(source: Source, where: Where): Promise<{ body: Readable; size?: number }> {
  if ('s3Uri' in source) {
    const { store } = destination(where);
    const info = await store.head(source.s3Uri);
    return { body: await store.get(source.s3Uri), size: info.size };
  }
  return { body: createReadStream(source.path), size: source.size };
}

/**
 * Why the rollout started no deployment for an upload (its `kind` is the `outcome` `--json`
 * prints): it skipped or rejected the upload, or the rollout function failed on it every time
 * Lambda tried. `detail` says why, in words.
 */
export type NoRollout =
  | { readonly kind: 'skipped'; readonly reason: SkipReason; readonly detail: string }
  | { readonly kind: 'rejected' | 'failed'; readonly detail: string };

/** The decision in the words of the twin's recent events (`skip (<reason>)`, `reject`), or `fail`. */
function noRolloutLabel(no: NoRollout): string {
  if (no.kind === 'skipped') return `skip (${no.reason})`;
  return no.kind === 'rejected' ? 'reject' : 'fail';
}

/** One sentence naming what the rollout did with `uri` and why, for the error line. */
function noRolloutSentence(uri: string, no: NoRollout): string {
  if (no.kind === 'skipped') return `the rollout skipped ${uri} as ${no.reason}: ${no.detail}`;
  if (no.kind === 'failed') return `the rollout failed on ${uri}: ${no.detail}`;
  return `the rollout rejected ${uri}: ${no.detail}`;
}

/** What the service had before the upload: its deployments and (on the twin) its recent events. */
export interface Before {
  readonly deploymentIds: ReadonlySet<string>;
  readonly events: ReadonlySet<string>;
}

/** Records the deployments and events that exist before an upload (see {@link findDeployment}). */
export async function snapshot(where: Where): Promise<Before> {
  const deploymentIds = new Set((await where.target.status()).deployments.map((d) => d.id));
  const events = new Set<string>();
  if (where.kind === 'local') {
    const local = await where.client.status();
    for (const d of local.deployments) deploymentIds.add(d.id);
    for (const e of local.recentEvents) events.add(JSON.stringify(e));
  }
  return { deploymentIds, events };
}

/** Whether a deployment pins the uploaded object: its version when the bucket has versions, else its ETag. */
function pinsUpload(model: PinnedModel | undefined, key: string, uploaded: ObjectInfo): boolean {
  if (model?.key !== key) return false;
  if (uploaded.versionId !== undefined) return model.versionId === uploaded.versionId;
  return !uploaded.etag || !model.etag || model.etag === uploaded.etag;
}

/**
 * Waits for the deployment this upload started, or returns why the rollout started none.
 * Deployments that existed before the upload never count: a re-upload of the live model must not be
 * taken for its rollout (the rollout skips it as a duplicate), nor a re-upload of a model rolled
 * back from for its old, failed deployment. On the twin, its recent events say what the rollout
 * decided; on AWS, the rollout function's log does (see {@link CloudRolloutWatch}). It looks every
 * `intervalMs` until `deadline` (epoch milliseconds).
 */
export async function findDeployment(
  where: Where,
  key: string,
  uploaded: ObjectInfo,
  before: Before,
  { deadline, intervalMs }: { readonly deadline: number; readonly intervalMs: number },
): Promise<DeploymentInfo | NoRollout> {
  const target: DeployTarget = where.target;
  const isNew = (d: { readonly id: string; readonly model: PinnedModel | undefined }): boolean =>
    !before.deploymentIds.has(d.id) && pinsUpload(d.model, key, uploaded);
  const watch = where.kind === 'cloud' ? new CloudRolloutWatch(where.cloud, key, uploaded) : undefined;
  for (;;) {
    const status = await target.status();
    const match = status.deployments.find(isNew);
    if (match) return match;
    if (where.kind === 'local') {
      const local = await where.client.status();
      const found = local.deployments.find(isNew);
      if (found) return toDeploymentInfo(found);
      const recorded = local.recentEvents.find((e) => !before.events.has(JSON.stringify(e)) && e.key === key);
      if (recorded?.skipReason !== undefined) {
        return { kind: 'skipped', reason: recorded.skipReason, detail: recorded.detail };
      }
      if (recorded?.decision === 'reject') return { kind: 'rejected', detail: recorded.detail };
    } else if (watch !== undefined) {
      const found = await watch.look(status);
      if (found !== undefined) return found;
    }
    if (Date.now() > deadline) {
      throw new SlipwayError(
        'ROLLOUT_NOT_STARTED',
        `no rollout started for ${key} in time${watch === undefined ? '' : `: ${watch.silence()}`}; check \`npx slipway status\``,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * What the rollout on AWS did with one upload, looked up on each poll: the rollout function's log
 * (every outcome, `../../rollout/outcome-log.ts`), and, where that log cannot be read, the one
 * skip the service itself shows (the same bytes under the live model's key).
 */
class CloudRolloutWatch {
  readonly #cloud: CloudContext;
  readonly #key: string;
  readonly #uploaded: ObjectInfo;
  readonly #object: LoggedObject;
  #tail: LogTail | undefined;
  /** What the log said so far: each read returns only new lines. */
  #logged: LoggedOutcome | undefined;
  #logProblem: string | undefined;

  constructor(cloud: CloudContext, key: string, uploaded: ObjectInfo) {
    this.#cloud = cloud;
    this.#key = key;
    this.#uploaded = uploaded;
    this.#object = {
      bucket: cloud.modelsBucket,
      key,
      ...(uploaded.versionId === undefined ? {} : { versionId: uploaded.versionId }),
      ...(uploaded.etag === undefined ? {} : { etag: uploaded.etag }),
    };
    if (cloud.rolloutLog === undefined) {
      this.#logProblem = `stack ${cloud.stackName} has no ${STACK_OUTPUTS.rolloutLogGroup} output (deploy the stack again to get it)`;
    }
  }

  /**
   * The deployment the upload started or why it started none; undefined while undecided. `status`
   * is the service as this poll read it.
   */
  async look(status: ServiceStatus): Promise<DeploymentInfo | NoRollout | undefined> {
    const duplicate = this.#duplicate(status);
    if (duplicate !== undefined) return duplicate;
    const logged = await this.#readLog();
    switch (logged?.kind) {
      case undefined:
        return undefined;
      case 'deployed':
        // Logged after UpdateService, so the deployment is listed (isNew finds it on the next look
        // at the latest, should this poll's read be older than the log line).
        return status.deployments.find((d) => d.id === logged.deploymentId);
      case 'skipped':
        return { kind: 'skipped', reason: logged.reason, detail: logged.detail };
      case 'rejected':
        return { kind: 'rejected', detail: logged.reason };
      case 'failing':
        return logged.attempts > ROLLOUT_RETRY_ATTEMPTS
          ? {
              kind: 'failed',
              detail: `${failure(logged)}, on every attempt; the event is in the failure queue`,
            }
          : undefined;
    }
  }

  /** Why the wait saw no outcome, for the timeout message. */
  silence(): string {
    if (this.#logged?.kind === 'failing') return `${failure(this.#logged)} (Lambda retries it)`;
    if (this.#logProblem !== undefined) {
      return `only a deployment or a duplicate shows without the rollout function's log, and ${this.#logProblem}`;
    }
    return `the rollout function logged nothing for it; see the dead-letter queue (docs: Operations, DLQ messages)`;
  }

  async #readLog(): Promise<LoggedOutcome | undefined> {
    const log = this.#cloud.rolloutLog;
    if (log === undefined) return undefined;
    // S3's LastModified is whole seconds, rounded down: no earlier than the upload's own event.
    this.#tail ??= log.follow(this.#uploaded.lastModified.getTime());
    try {
      const messages = await this.#tail.read();
      this.#logProblem = undefined;
      this.#logged = loggedOutcome(messages, this.#object, this.#logged);
    } catch (err) {
      const first = this.#logProblem === undefined;
      this.#logProblem = `reading ${log.logGroupName} failed: ${err instanceof Error ? err.message : String(err)} (it needs logs:FilterLogEvents)`;
      if (first) process.stderr.write(`  note: ${this.#logProblem}\n`);
    }
    return this.#logged;
  }

  /**
   * In a bucket without versions, the same bytes under the live model's key: decideRollout's
   * duplicate. The live model is the PRIMARY deployment's (ECS's service task definition).
   */
  #duplicate(status: ServiceStatus): NoRollout | undefined {
    const { versionId, etag, uri } = this.#uploaded;
    if (versionId !== undefined || etag === undefined) return undefined;
    const live = status.deployments.find((d) => d.status === 'PRIMARY')?.model;
    if (live?.key === this.#key && live.versionId === undefined && live.etag === etag) {
      return { kind: 'skipped', reason: 'duplicate', detail: `${uri} is already the live model` };
    }
    return undefined;
  }
}

function failure(failing: Extract<LoggedOutcome, { kind: 'failing' }>): string {
  const times = failing.attempts === 1 ? 'once' : `${failing.attempts} times`;
  return `the rollout function failed on it ${times}, last with ${failing.code ?? 'an error'}: ${failing.error}`;
}
