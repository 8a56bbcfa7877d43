/**
 * Prints the model URI the live inference service pins, from `slipway status --cloud --json`
 * on stdin, or `none` when the service runs no model. deploy.yml passes it to
 * `cdk deploy -c initialModelUri=...`: a deploy that changes the task definition (a new image
 * tag) registers a revision from the template, and without this it would drop the model the
 * rollout Lambda pinned.
 *
 * With `--record` it prints the model's ordering record instead, for `-c initialModelRecord=...`.
 *
 * Usage: node bin/slipway.js status --cloud --wait --json | npx tsx scripts/live-model-uri.ts [--record]
 */
import { text } from 'node:stream/consumers';
import { pathToFileURL } from 'node:url';
import { NO_MODEL_URI } from '../src/names.ts';

/** The pinned model of a deployment, as `slipway status --json` prints it. */
interface StatusModel {
  readonly uri?: string;
  readonly etag?: string;
  readonly sequencer?: string;
  readonly eventTime?: string;
}

/** The part of `slipway status --json` this reads. */
interface StatusJson {
  readonly service: {
    readonly deployments: readonly {
      readonly id?: string;
      readonly status: string;
      readonly rolloutState?: string;
      readonly model?: StatusModel;
    }[];
  };
}

function isStatusJson(value: unknown): value is StatusJson {
  const service = (value as { service?: { deployments?: unknown } } | null)?.service;
  return Array.isArray(service?.deployments);
}

/**
 * The URI the PRIMARY deployment pins, or `none`. Throws on anything that is not a status
 * document, so a failed lookup stops the deploy instead of silently unpinning the model.
 */
export function liveModelUri(status: unknown): string {
  return liveModel(status)?.uri ?? NO_MODEL_URI;
}

/**
 * The ordering record the rollout keeps with the live model (ETag, sequencer, event time), as the
 * JSON `cdk deploy -c initialModelRecord=...` takes; `{}` when there is none. Without it, the
 * revision a code deploy registers would forget how new the live model is, and a late retry of an
 * older upload's event would count as newer and replace it.
 */
export function liveModelRecord(status: unknown): string {
  const model = liveModel(status);
  const record: Record<string, string> = {};
  for (const key of ['etag', 'sequencer', 'eventTime'] as const) {
    const value = model?.[key];
    if (typeof value === 'string' && value !== '') record[key] = value;
  }
  return JSON.stringify(record);
}

function liveModel(status: unknown): StatusModel | undefined {
  if (!isStatusJson(status)) {
    throw new Error(
      'expected the output of `slipway status --cloud --json` ({"service": {"deployments": [...]}})',
    );
  }
  const primary = status.service.deployments.find((d) => d.status === 'PRIMARY');
  if (primary === undefined) throw new Error('the service has no PRIMARY deployment');
  // Mid-rollout the PRIMARY deployment's model may still fail and be rolled back: pinning it in the
  // template would deploy it again.
  if (primary.rolloutState === 'IN_PROGRESS') {
    throw new Error(
      `the service is in the middle of a rollout (PRIMARY deployment ${primary.id ?? '?'} is IN_PROGRESS): ` +
        'read the status with `slipway status --cloud --wait --json`, which waits for it to settle',
    );
  }
  return primary.model;
}

async function main(): Promise<void> {
  const input = await text(process.stdin);
  let parsed: unknown;
  try {
    parsed = JSON.parse(input);
  } catch {
    throw new Error(`stdin is not JSON: ${input.slice(0, 120)}`);
  }
  const record = process.argv.includes('--record');
  process.stdout.write(`${record ? liveModelRecord(parsed) : liveModelUri(parsed)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`live-model-uri: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
