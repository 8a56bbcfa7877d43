import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  CloudFormationClient,
  DescribeStacksCommand,
  type StackStatus,
} from '@aws-sdk/client-cloudformation';
import { InvokeCommand, LambdaClient, type InvokeCommandOutput } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  RestoreFailed,
  restoreLiveModel,
  type RestoreLiveModelOptions,
} from '../../scripts/restore-live-model.ts';

const cloudformation = mockClient(CloudFormationClient);
const lambda = mockClient(LambdaClient);
const URI = 's3://acme-models/runs/b/model.tar.gz?versionId=vb';
const RECORD =
  '{"etag":"0123456789abcdef0123456789abcdef","sequencer":"0062E99A88DC407460","eventTime":"2026-11-03T10:00:00Z"}';
const FUNCTION = 'Slipway-RolloutFunctionCFD0C0C1-AbC123';

let sleeps: number[];
let logs: string[];

function options(overrides: Partial<RestoreLiveModelOptions> = {}): RestoreLiveModelOptions {
  return {
    stackName: 'Slipway',
    modelUri: URI,
    modelRecord: RECORD,
    reason: 'deploy run 42',
    cloudformation: new CloudFormationClient({ region: 'eu-west-1' }),
    lambda: new LambdaClient({ region: 'eu-west-1' }),
    intervalMs: 15_000,
    log: (line) => logs.push(line),
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    ...overrides,
  };
}

/** DescribeStacks answers: the stack in each of `statuses`, one per call, the last one from then on. */
function stackStatuses(...statuses: StackStatus[]): void {
  const answer = (status: StackStatus) => ({
    Stacks: [
      {
        StackName: 'Slipway',
        StackStatus: status,
        CreationTime: new Date('2026-11-01T00:00:00Z'),
        StackStatusReason:
          status === 'UPDATE_ROLLBACK_FAILED' ? 'Resource handler returned message: x' : undefined,
        Outputs: [
          { OutputKey: 'RolloutLogGroupName', OutputValue: '/aws/lambda/rollout' },
          { OutputKey: 'RolloutFunctionName', OutputValue: FUNCTION },
        ],
      },
    ],
  });
  let stub = cloudformation.on(DescribeStacksCommand, { StackName: 'Slipway' });
  for (const status of statuses) stub = stub.resolvesOnce(answer(status));
  stub.resolves(answer(statuses.at(-1)!));
}

/** A response payload: the bytes the SDK hands over (its blob adapter is a Uint8Array). */
function payload(value: unknown): InvokeCommandOutput['Payload'] {
  return new TextEncoder().encode(JSON.stringify(value)) as InvokeCommandOutput['Payload'];
}

beforeEach(() => {
  cloudformation.reset();
  lambda.reset();
  sleeps = [];
  logs = [];
});

describe('restoreLiveModel', () => {
  it('waits for the rollback to finish, then asks the rollout function to pin the model again', async () => {
    stackStatuses(
      'UPDATE_ROLLBACK_IN_PROGRESS',
      'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS',
      'UPDATE_ROLLBACK_COMPLETE',
    );
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      Payload: payload({
        action: 'deployed',
        modelUri: URI,
        deploymentId: 'ecs-svc/7',
        revision: 'arn:td:9',
      }),
    });

    const result = await restoreLiveModel(options());

    expect(result).toEqual({ kind: 'restored', deploymentId: 'ecs-svc/7', revision: 'arn:td:9' });
    expect(sleeps).toEqual([15_000, 15_000]);
    expect(cloudformation.commandCalls(DescribeStacksCommand)).toHaveLength(3);
    const invokes = lambda.commandCalls(InvokeCommand);
    expect(invokes).toHaveLength(1);
    const { Payload, ...input } = invokes[0]!.args[0].input;
    expect(input).toStrictEqual({ FunctionName: FUNCTION, InvocationType: 'RequestResponse' });
    expect(JSON.parse(new TextDecoder().decode(Payload as Uint8Array))).toStrictEqual({
      slipway: 'restore-model',
      modelUri: URI,
      record: JSON.parse(RECORD) as unknown,
      reason: 'deploy run 42',
    });
    expect(logs.at(-1)).toBe(`stack Slipway rolled back; asking ${FUNCTION} to pin ${URI} again`);
  });

  it('says so when the model is live already', async () => {
    stackStatuses('UPDATE_ROLLBACK_COMPLETE');
    lambda
      .on(InvokeCommand)
      .resolves({ Payload: payload({ action: 'skipped', reason: 'already-live', modelUri: URI }) });

    expect(await restoreLiveModel(options())).toEqual({
      kind: 'already-live',
      why: 'already-live: nothing to restore',
    });
  });

  it('touches nothing when no model was live before the deploy', async () => {
    const result = await restoreLiveModel(options({ modelUri: 'none', modelRecord: '{}' }));

    expect(result).toEqual({ kind: 'nothing-to-restore', why: 'no model was live before this deploy' });
    expect(cloudformation.calls()).toHaveLength(0);
    expect(lambda.calls()).toHaveLength(0);
  });

  it('touches nothing when the stack was not rolled back (the update completed, or failed before it began)', async () => {
    for (const status of ['UPDATE_COMPLETE', 'CREATE_COMPLETE'] as const) {
      cloudformation.reset();
      stackStatuses(status);
      expect(await restoreLiveModel(options())).toMatchObject({
        kind: 'nothing-to-restore',
        why: expect.stringContaining(`stack Slipway is ${status}, not rolled back from an update`) as string,
      });
    }
    expect(lambda.calls()).toHaveLength(0);
  });

  it('fails, saying what to run, when the rollback itself failed', async () => {
    stackStatuses('UPDATE_ROLLBACK_FAILED');

    const error = await restoreLiveModel(options()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RestoreFailed);
    expect((error as Error).message).toBe(
      'stack Slipway is UPDATE_ROLLBACK_FAILED (Resource handler returned message: x): fix what stopped the rollback, ' +
        'run `aws cloudformation continue-update-rollback --stack-name Slipway`, then run this again: ' +
        `npx tsx scripts/restore-live-model.ts --stack 'Slipway' --model-uri '${URI}' --model-record '${RECORD}'`,
    );
    expect(lambda.calls()).toHaveLength(0);
  });

  it('gives up on a stack still rolling back at the deadline, saying what to run later', async () => {
    stackStatuses('UPDATE_ROLLBACK_IN_PROGRESS');

    const error = await restoreLiveModel(options({ timeoutMs: 40_000 })).catch((e: unknown) => e);

    expect((error as Error).message).toMatch(
      /^stack Slipway is still UPDATE_ROLLBACK_IN_PROGRESS; once it settles, run: npx tsx/,
    );
    // The last wait is cut to the deadline, so the stack is read once more at 40 s.
    expect(sleeps).toEqual([15_000, 15_000, 10_000]);
    expect(lambda.calls()).toHaveLength(0);
  });

  it("reports the function's own error when the restore failed", async () => {
    stackStatuses('UPDATE_ROLLBACK_COMPLETE');
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: payload({
        errorType: 'RolloutError',
        errorMessage: 'access denied: ecs:RegisterTaskDefinition',
      }),
    });

    const error = await restoreLiveModel(options()).catch((e: unknown) => e);

    expect((error as Error).message).toBe(
      `the rollout function ${FUNCTION} failed to restore ${URI}: RolloutError: access denied: ecs:RegisterTaskDefinition ` +
        '(its log group is in the stack output RolloutLogGroupName)',
    );
  });

  it('refuses a record that is not one before it calls AWS', async () => {
    for (const [record, message] of [
      ['{etag', '--model-record is not JSON: {etag'],
      [
        '{"etag":"\\"abc\\""}',
        '--model-record is not a model record: etag: must be an S3 ETag without quotes',
      ],
      [
        '[]',
        '--model-record is not a model record: (record): Invalid input: expected object, received array',
      ],
    ]) {
      await expect(restoreLiveModel(options({ modelRecord: record }))).rejects.toThrow(message);
    }
    expect(cloudformation.calls()).toHaveLength(0);
  });

  it('says how to restore by hand when the rolled-back template predates the restore', async () => {
    cloudformation.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'Slipway',
          StackStatus: 'UPDATE_ROLLBACK_COMPLETE',
          CreationTime: new Date('2026-11-01T00:00:00Z'),
          Outputs: [],
        },
      ],
    });

    await expect(restoreLiveModel(options())).rejects.toThrow(
      `stack Slipway has no RolloutFunctionName output (its template is older than the restore): deploy ${URI} again by hand`,
    );
  });
});

describe('scripts/restore-live-model.ts', () => {
  const script = fileURLToPath(new URL('../../scripts/restore-live-model.ts', import.meta.url));
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', script, ...args], {
      env: { ...process.env, AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  it('with no model live before the deploy, exits 0 without calling AWS', async () => {
    const { code, stdout } = await run(['--stack', 'Slipway', '--model-uri', 'none', '--model-record', '{}']);
    expect(code).toBe(0);
    expect(stdout).toBe('no model was live before this deploy\n');
  });

  it('names a missing option in one line, with exit 1', async () => {
    const { code, stderr } = await run(['--stack', 'Slipway']);
    expect(code).toBe(1);
    expect(stderr).toBe('restore-live-model: --stack, --model-uri and --model-record are required\n');
  });
});
