/**
 * Prints the model URI the live inference service pins, from `slipway status --cloud --json`
 * on stdin, or `none` when the service runs no model. deploy.yml passes it to
 * `cdk deploy -c initialModelUri=...`: a deploy that changes the task definition (a new image
 * tag) registers a revision from the template, and without this it would drop the model the
 * rollout Lambda pinned.
 *
 * Usage: node bin/slipway.js status --cloud --json | npx tsx scripts/live-model-uri.ts
 */
import { text } from 'node:stream/consumers';
import { pathToFileURL } from 'node:url';
import { NO_MODEL_URI } from '../src/names.ts';

/** The part of `slipway status --json` this reads. */
interface StatusJson {
  readonly service: {
    readonly deployments: readonly { readonly status: string; readonly model?: { readonly uri?: string } }[];
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
  if (!isStatusJson(status)) {
    throw new Error(
      'expected the output of `slipway status --cloud --json` ({"service": {"deployments": [...]}})',
    );
  }
  const primary = status.service.deployments.find((d) => d.status === 'PRIMARY');
  if (primary === undefined) throw new Error('the service has no PRIMARY deployment');
  return primary.model?.uri ?? NO_MODEL_URI;
}

async function main(): Promise<void> {
  const input = await text(process.stdin);
  let parsed: unknown;
  try {
    parsed = JSON.parse(input);
  } catch {
    throw new Error(`stdin is not JSON: ${input.slice(0, 120)}`);
  }
  process.stdout.write(`${liveModelUri(parsed)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`live-model-uri: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
