/**
 * After a failed platform deploy, pins the model that was live before it again.
 *
 * deploy.yml reads the live model before `cdk deploy` (scripts/live-model-uri.ts) and pins it in
 * the template. When the deploy fails, CloudFormation rolls the service back to the task
 * definition of the last stack update that succeeded, which pins the model that was live *then*:
 * every model the rollout deployed since is gone from the service. This waits for the stack to
 * settle and, if CloudFormation rolled an update back, asks the rollout function to pin the model
 * again (a restore request, src/rollout/restore.ts). It changes nothing in any other case.
 *
 * Exit 0 when the model is pinned again, was never taken away, or there was none; 1 when it could
 * not be restored (the message says what to do).
 *
 * Usage: npx tsx scripts/restore-live-model.ts --stack <stack name> --model-uri <uri>
 *          --model-record '<json>' [--reason <text>] [--timeout-minutes <n>]
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { CloudFormationClient, DescribeStacksCommand, type Stack } from '@aws-sdk/client-cloudformation';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { NO_MODEL_URI, STACK_OUTPUTS } from '../src/names.ts';
import { pollUntil } from '../src/shared/poll.ts';
import { describeZodIssues } from '../src/shared/zod-issues.ts';
import type { RolloutHandlerResult } from '../src/rollout/lambda.ts';
import { ModelRecordSchema } from '../src/rollout/pinned-model.ts';
import { RESTORE_REQUEST_KIND, type RestoreRequest } from '../src/rollout/restore.ts';

/** Options of `restoreLiveModel`. */
export interface RestoreLiveModelOptions {
  readonly stackName: string;
  /** The model the service pinned before the deploy (`live-model-uri.ts`), or `none`. */
  readonly modelUri: string;
  /** Its ordering record as JSON (`live-model-uri.ts --record`). */
  readonly modelRecord: string;
  /** Why, for the rollout function's log. */
  readonly reason?: string;
  readonly cloudformation: CloudFormationClient;
  readonly lambda: LambdaClient;
  /** How long to wait for a stack still updating or rolling back. @default 30 minutes */
  readonly timeoutMs?: number;
  /** Time between two looks at the stack. @default 15000 */
  readonly intervalMs?: number;
  /** Progress lines. @default stdout */
  readonly log?: (line: string) => void;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What `restoreLiveModel` did. */
export type RestoreLiveModelResult =
  | { readonly kind: 'nothing-to-restore'; readonly why: string }
  | { readonly kind: 'restored'; readonly deploymentId: string; readonly revision: string }
  | { readonly kind: 'already-live'; readonly why: string };

/** A restore that could not be done; the message says why and what to do. */
export class RestoreFailed extends Error {
  override readonly name = 'RestoreFailed';
}

/**
 * Wait for the stack to settle; if CloudFormation rolled back an update, send the rollout function
 * a restore request for the model and report what it did. Throws `RestoreFailed`.
 */
export async function restoreLiveModel(options: RestoreLiveModelOptions): Promise<RestoreLiveModelResult> {
  const { stackName, modelUri, lambda } = options;
  const log = options.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  if (modelUri === NO_MODEL_URI) {
    return { kind: 'nothing-to-restore', why: 'no model was live before this deploy' };
  }
  const record = parseRecord(options.modelRecord);
  const stack = await settledStack(options, log);
  if (stack.StackStatus === 'UPDATE_ROLLBACK_FAILED') {
    throw new RestoreFailed(
      `stack ${stackName} is UPDATE_ROLLBACK_FAILED (${stack.StackStatusReason ?? 'no reason given'}): ` +
        `fix what stopped the rollback, run \`aws cloudformation continue-update-rollback --stack-name ${stackName}\`, ` +
        `then run this again: ${commandLine(options)}`,
    );
  }
  if (stack.StackStatus !== 'UPDATE_ROLLBACK_COMPLETE') {
    return {
      kind: 'nothing-to-restore',
      why: `stack ${stackName} is ${stack.StackStatus}, not rolled back from an update: the service keeps the model the deploy pinned`,
    };
  }
  const functionName = stack.Outputs?.find((o) => o.OutputKey === STACK_OUTPUTS.rolloutFunction)?.OutputValue;
  if (!functionName) {
    throw new RestoreFailed(
      `stack ${stackName} has no ${STACK_OUTPUTS.rolloutFunction} output (its template is older than the restore): ` +
        `deploy ${modelUri} again by hand (slipway deploy --cloud), or upload it again`,
    );
  }
  const request: RestoreRequest = {
    slipway: RESTORE_REQUEST_KIND,
    modelUri,
    record,
    ...(options.reason === undefined ? {} : { reason: options.reason }),
  };
  log(`stack ${stackName} rolled back; asking ${functionName} to pin ${modelUri} again`);
  const response = await lambda.send(
    new InvokeCommand({
      FunctionName: functionName,
      InvocationType: 'RequestResponse',
      Payload: new TextEncoder().encode(JSON.stringify(request)),
    }),
  );
  const payload = decodePayload(response.Payload);
  if (response.FunctionError !== undefined) {
    const error = payload as { errorType?: unknown; errorMessage?: unknown } | undefined;
    const type = typeof error?.errorType === 'string' ? error.errorType : response.FunctionError;
    const message = typeof error?.errorMessage === 'string' ? error.errorMessage : JSON.stringify(payload);
    throw new RestoreFailed(
      `the rollout function ${functionName} failed to restore ${modelUri}: ${type}: ${message} ` +
        `(its log group is in the stack output ${STACK_OUTPUTS.rolloutLogGroup})`,
    );
  }
  const result = payload as RolloutHandlerResult | undefined;
  if (result?.action === 'deployed') {
    return { kind: 'restored', deploymentId: result.deploymentId, revision: result.revision };
  }
  if (result?.action === 'skipped') {
    return { kind: 'already-live', why: `${result.reason}: nothing to restore` };
  }
  throw new RestoreFailed(
    `the rollout function ${functionName} answered ${JSON.stringify(payload)}, not a restore result`,
  );
}

function parseRecord(text: string): RestoreRequest['record'] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RestoreFailed(`--model-record is not JSON: ${text.slice(0, 120)}`);
  }
  const parsed = ModelRecordSchema.safeParse(json);
  if (!parsed.success) {
    throw new RestoreFailed(
      `--model-record is not a model record: ${describeZodIssues(parsed.error, 'record')}`,
    );
  }
  return parsed.data;
}

/** The stack once no operation is in progress on it. */
async function settledStack(options: RestoreLiveModelOptions, log: (line: string) => void): Promise<Stack> {
  const { stackName, cloudformation } = options;
  const { value: stack, settled } = await pollUntil(
    async () => {
      const { Stacks } = await cloudformation.send(new DescribeStacksCommand({ StackName: stackName }));
      const found = Stacks?.[0];
      if (found?.StackStatus === undefined) throw new RestoreFailed(`stack ${stackName} was not found`);
      return found as Stack & { StackStatus: string };
    },
    (found) => !found.StackStatus.endsWith('_IN_PROGRESS'),
    {
      intervalMs: options.intervalMs ?? 15_000,
      timeoutMs: options.timeoutMs ?? 30 * 60_000,
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
      onWait: (found) => log(`stack ${stackName} is ${found.StackStatus}; waiting for it to settle`),
    },
  );
  if (!settled) {
    throw new RestoreFailed(
      `stack ${stackName} is still ${stack.StackStatus}; once it settles, run: ${commandLine(options)}`,
    );
  }
  return stack;
}

function decodePayload(payload: Uint8Array | undefined): unknown {
  if (payload === undefined || payload.length === 0) return undefined;
  const text = new TextDecoder().decode(payload);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** This script's command line for the same restore, to run by hand. */
function commandLine(options: RestoreLiveModelOptions): string {
  const quote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;
  return (
    `npx tsx scripts/restore-live-model.ts --stack ${quote(options.stackName)} ` +
    `--model-uri ${quote(options.modelUri)} --model-record ${quote(options.modelRecord)}`
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      stack: { type: 'string' },
      'model-uri': { type: 'string' },
      'model-record': { type: 'string' },
      reason: { type: 'string' },
      'timeout-minutes': { type: 'string' },
    },
    strict: true,
  });
  const { stack, 'model-uri': modelUri, 'model-record': modelRecord } = values;
  if (!stack || !modelUri || modelRecord === undefined) {
    throw new RestoreFailed('--stack, --model-uri and --model-record are required');
  }
  const minutes = values['timeout-minutes'] === undefined ? 30 : Number(values['timeout-minutes']);
  if (!Number.isInteger(minutes) || minutes < 1) {
    throw new RestoreFailed(
      `--timeout-minutes must be a whole number of minutes (got ${values['timeout-minutes']})`,
    );
  }
  const cloudformation = new CloudFormationClient({});
  // Reserved concurrency 1 throttles an invocation while an upload's rollout runs: retry longer.
  const lambda = new LambdaClient({ maxAttempts: 8 });
  try {
    const result = await restoreLiveModel({
      stackName: stack,
      modelUri,
      modelRecord,
      ...(values.reason === undefined ? {} : { reason: values.reason }),
      cloudformation,
      lambda,
      timeoutMs: minutes * 60_000,
    });
    process.stdout.write(
      result.kind === 'restored'
        ? `restored ${modelUri}: deployment ${result.deploymentId} of ${result.revision}; follow it with \`slipway status --cloud --stack ${stack}\`\n`
        : `${result.why}\n`,
    );
  } finally {
    cloudformation.destroy();
    lambda.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`restore-live-model: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
