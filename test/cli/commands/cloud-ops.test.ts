import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CloudWatchLogsClient,
  FilterLogEventsCommand,
  type FilterLogEventsCommandInput,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  AccessDeniedException,
  ECSClient,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Logger } from '@aws-lambda-powertools/logger';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../../helpers/capture-output.ts';
import type { CapturedOutput } from '../../helpers/capture-output.ts';
import { LATE_EVENT_WINDOW_MS } from '../../../src/cli/cloud.ts';
import { findDeployment, snapshot } from '../../../src/cli/commands/deploy.ts';
import { runCli } from '../../../src/cli/program.ts';
import { resolveWhere } from '../../../src/cli/targets.ts';
import { STACK_OUTPUTS } from '../../../src/names.ts';
import { EcsDeployTarget } from '../../../src/rollout/ecs-target.ts';
import { createRolloutHandler } from '../../../src/rollout/lambda.ts';
import { rolloutModelEvent } from '../../../src/rollout/operations.ts';
import { CLUSTER, MODELS_BUCKET, SERVICE, modelEvent, simulateEcs } from '../../rollout/fixtures.ts';
import type { EcsWorld } from '../../rollout/fixtures.ts';

const cloudformation = mockClient(CloudFormationClient);
const ecs = mockClient(ECSClient);
const s3 = mockClient(S3Client);
const logs = mockClient(CloudWatchLogsClient);

const outputs: Record<string, string> = {
  [STACK_OUTPUTS.modelsBucket]: MODELS_BUCKET,
  [STACK_OUTPUTS.cluster]: CLUSTER,
  [STACK_OUTPUTS.service]: SERVICE,
  [STACK_OUTPUTS.loadBalancerUrl]: 'http://internal-slipway.example',
};
const A_URI = `s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`;
const B_URI = `s3://${MODELS_BUCKET}/runs/b/model.tar.gz?versionId=vb`;

let output: CapturedOutput;
let world: EcsWorld;

function stackWith(values: Record<string, string>): void {
  cloudformation.on(DescribeStacksCommand, { StackName: 'Slipway' }).resolves({
    Stacks: [
      {
        StackName: 'Slipway',
        CreationTime: new Date(),
        StackStatus: 'UPDATE_COMPLETE',
        Outputs: Object.entries(values).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  });
}

/** Deploys model A, lets it complete, then deploys B, as the Lambda would. */
async function deployAThenB(): Promise<void> {
  const target = new EcsDeployTarget({ client: new ECSClient({}), cluster: CLUSTER, service: SERVICE });
  const policy = { modelsBucket: MODELS_BUCKET };
  await rolloutModelEvent(
    modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:00Z', versionId: 'va' }),
    target,
    policy,
  );
  world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
  await rolloutModelEvent(
    modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T13:00:00Z', versionId: 'vb' }),
    target,
    policy,
  );
  world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
}

beforeEach(() => {
  output = captureOutput();
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  world = simulateEcs(ecs);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  cloudformation.reset();
  ecs.reset();
  s3.reset();
  logs.reset();
});

describe('--cloud operations read the deployed stack and drive ECS', () => {
  it('slipway status --cloud reports the model the live revision pins, from the stack outputs', async () => {
    stackWith(outputs);
    await deployAThenB();

    const code = await runCli(['node', 'slipway', 'status', '--cloud', '--json']);

    expect(code).toBe(0);
    const printed = JSON.parse(output.stdout) as { stack: string; service: unknown };
    expect(printed.stack).toBe('Slipway');
    expect(JSON.stringify(printed.service)).toContain(B_URI);
  });

  it('slipway rollback --cloud pins the previous model on the service named by the stack outputs', async () => {
    stackWith(outputs);
    await deployAThenB();
    const updatesBefore = ecs.commandCalls(UpdateServiceCommand).length;

    const code = await runCli(['node', 'slipway', 'rollback', '--cloud', '--json']);

    expect(code).toBe(0);
    const result = JSON.parse(output.stdout) as { model?: { uri?: string } };
    expect(result.model?.uri).toBe(A_URI);
    const updates = ecs.commandCalls(UpdateServiceCommand).slice(updatesBefore);
    expect(updates).toHaveLength(1);
    expect(updates[0]!.args[0].input).toMatchObject({ cluster: CLUSTER, service: SERVICE });
    expect(world.serviceTaskDefinition).toBe(updates[0]!.args[0].input.taskDefinition);
  });

  it('refuses, naming the missing output, when the stack is not a Slipway stack', async () => {
    const { [STACK_OUTPUTS.service]: _service, ...withoutService } = outputs;
    stackWith(withoutService);

    const code = await runCli(['node', 'slipway', 'status', '--cloud']);

    expect(code).toBe(1);
    expect(output.stderr).toContain(STACK_OUTPUTS.service);
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(0);
  });
});

describe('deploy --cloud and predict --cloud', () => {
  const KEY = 'runs/c/model.tar.gz';
  const BYTES = Buffer.from('a model.tar.gz stands here');
  let dir: string;
  let tarball: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipway-cloud-'));
    tarball = join(dir, 'model.tar.gz');
    await writeFile(tarball, BYTES);
    s3.on(HeadObjectCommand, { Bucket: MODELS_BUCKET, Key: KEY }).resolves({
      ContentLength: BYTES.length,
      ETag: '"etag-c"',
      VersionId: 'vc',
      LastModified: new Date('2026-03-01T14:00:00Z'),
    });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** `slipway deploy <tarball> --cloud --key KEY --wait --json`, then `extra`. */
  function deployWait(...extra: string[]): Promise<number> {
    const flags = ['--cloud', '--key', KEY, '--wait', '--json', ...extra];
    return runCli(['node', 'slipway', 'deploy', tarball, ...flags]);
  }

  it('slipway deploy --cloud uploads to the models bucket named by the stack, as one PutObject', async () => {
    stackWith(outputs);
    s3.on(PutObjectCommand).resolves({ ETag: '"etag-c"', VersionId: 'vc' });

    const code = await runCli(['node', 'slipway', 'deploy', tarball, '--cloud', '--key', KEY, '--json']);

    expect(code).toBe(0);
    const puts = s3.commandCalls(PutObjectCommand);
    expect(puts).toHaveLength(1);
    const { Body, ...input } = puts[0]!.args[0].input;
    expect(input).toEqual({ Bucket: MODELS_BUCKET, Key: KEY, ContentType: 'application/gzip' });
    expect(Buffer.from(Body as Uint8Array)).toEqual(BYTES);
    expect(JSON.parse(output.stdout)).toEqual({
      uri: `s3://${MODELS_BUCKET}/${KEY}?versionId=vc`,
      etag: 'etag-c',
      size: BYTES.length,
    });
    // Without --wait the upload event alone starts the rollout: the CLI never touches ECS.
    expect(ecs.calls()).toHaveLength(0);
  });

  it('slipway deploy --cloud --wait follows the rollout the upload started until it completes', async () => {
    stackWith(outputs);
    const target = new EcsDeployTarget({ client: new ECSClient({}), cluster: CLUSTER, service: SERVICE });
    // What EventBridge and the Lambda do once the object lands: pin it in a new revision and deploy.
    s3.on(PutObjectCommand).callsFake(async () => {
      await rolloutModelEvent(
        modelEvent({ key: KEY, versionId: 'vc', etag: 'etag-c', time: '2026-03-01T14:00:00Z' }),
        target,
        { modelsBucket: MODELS_BUCKET },
      );
      world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
      return { ETag: '"etag-c"', VersionId: 'vc' };
    });

    const code = await deployWait();

    expect(code).toBe(0);
    const result = JSON.parse(output.stdout) as { deploymentId: string; outcome: string; uri: string };
    expect(result.outcome).toBe('completed');
    expect(result.deploymentId).toBe(world.deployments[0]!.id);
    expect(result.uri).toBe(`s3://${MODELS_BUCKET}/${KEY}?versionId=vc`);
  });

  it('slipway deploy --cloud --wait says no rollout happened for the bytes of the live model again in an unversioned bucket', async () => {
    stackWith(outputs);
    const target = new EcsDeployTarget({ client: new ECSClient({}), cluster: CLUSTER, service: SERVICE });
    await rolloutModelEvent(
      modelEvent({ key: KEY, versionId: null, etag: 'etag-c', time: '2026-03-01T14:00:00Z' }),
      target,
      { modelsBucket: MODELS_BUCKET },
    );
    world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
    // The Lambda skips the event of the same bytes under the live key as a duplicate: no new deployment.
    s3.on(PutObjectCommand).resolves({ ETag: '"etag-c"' });
    s3.on(HeadObjectCommand, { Bucket: MODELS_BUCKET, Key: KEY }).resolves({
      ContentLength: BYTES.length,
      ETag: '"etag-c"',
      LastModified: new Date('2026-03-01T15:00:00Z'),
    });

    const code = await deployWait();

    expect(code).toBe(0);
    const result = JSON.parse(output.stdout) as { outcome: string; reason: string; deploymentId?: string };
    expect(result.outcome).toBe('skipped');
    expect(result.deploymentId).toBeUndefined();
    expect(result.reason).toMatch(/duplicate.*is already the live model/);
  });

  describe("with the rollout function's log", () => {
    const LOG_GROUP = 'Slipway-RolloutLogs1A2B3C4D-x1y2z3';
    /** What the rollout function logged so far, as FilterLogEvents returns it. */
    let logged: string[];

    beforeEach(() => {
      logged = [];
      stackWith({ ...outputs, [STACK_OUTPUTS.rolloutLogGroup]: LOG_GROUP });
      logs.on(FilterLogEventsCommand).callsFake(() => ({
        events: logged.map((message, i) => ({
          message,
          timestamp: Date.parse('2026-03-01T14:00:05Z'),
          eventId: `${i}`,
        })),
      }));
    });

    /**
     * Invoke the real rollout handler on `event` as Lambda would, `attempts` times, and append what it
     * logged to the function's log (out of the CLI's own output, which captures the same streams).
     */
    async function invokeRollout(event: Record<string, unknown>, attempts = 1): Promise<void> {
      const handle = createRolloutHandler({
        target: new EcsDeployTarget({ client: new ECSClient({}), cluster: CLUSTER, service: SERVICE }),
        modelsBucket: MODELS_BUCKET,
        logger: new Logger({ serviceName: 'slipway-rollout' }),
      });
      for (let attempt = 0; attempt < attempts; attempt++) {
        const start = { stdout: output.stdout.length, stderr: output.stderr.length };
        await handle(event).catch(() => undefined);
        const lines = `${output.stdout.slice(start.stdout)}${output.stderr.slice(start.stderr)}`;
        output.stdout = output.stdout.slice(0, start.stdout);
        output.stderr = output.stderr.slice(0, start.stderr);
        logged.push(...lines.split('\n').filter((l) => l.startsWith('{')));
      }
    }

    it('exits 1 at once naming the skip when the rollout skips the upload as older than the live model', async () => {
      await deployAThenB();
      // The upload's event is older than b's (say b landed while c was uploading): the rollout skips it.
      s3.on(PutObjectCommand).callsFake(async () => {
        await invokeRollout(
          modelEvent({ key: KEY, versionId: 'vc', etag: 'etag-c', time: '2026-03-01T12:30:00Z' }),
        );
        return { ETag: '"etag-c"', VersionId: 'vc' };
      });
      const updates = ecs.commandCalls(UpdateServiceCommand).length;

      const code = await deployWait('--timeout', '1');

      expect(code).toBe(1);
      const result = JSON.parse(output.stdout) as { outcome: string; reason: string };
      expect(result.outcome).toBe('skipped');
      expect(result.reason).toMatch(
        /^skip \(older-than-live\): .*runs\/c\/model\.tar\.gz.* is older than the live model .*runs\/b/,
      );
      expect(output.stderr).toMatch(
        /the rollout skipped s3:\/\/\S+runs\/c\/model\.tar\.gz\S* as older-than-live: /,
      );
      expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(updates);
      // Read from the upload's own time on (S3's LastModified), once: the first look decided.
      expect(logs.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input)).toStrictEqual([
        { logGroupName: LOG_GROUP, startTime: Date.parse('2026-03-01T14:00:00Z') },
      ]);
    });

    it('follows the deployment the log names, as without the log', async () => {
      s3.on(PutObjectCommand).callsFake(async () => {
        await invokeRollout(
          modelEvent({ key: KEY, versionId: 'vc', etag: 'etag-c', time: '2026-03-01T14:00:00Z' }),
        );
        world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
        return { ETag: '"etag-c"', VersionId: 'vc' };
      });

      const code = await deployWait();

      expect(code).toBe(0);
      expect(JSON.parse(output.stdout)).toMatchObject({
        outcome: 'completed',
        deploymentId: world.deployments[0]!.id,
      });
    });

    it('says why it saw no outcome when it may not read the log, and still recognises nothing else', async () => {
      logs.on(FilterLogEventsCommand).rejects(
        Object.assign(new Error('not authorized to perform: logs:FilterLogEvents'), {
          name: 'AccessDeniedException',
        }),
      );
      s3.on(PutObjectCommand).resolves({ ETag: '"etag-c"', VersionId: 'vc' });

      const code = await deployWait('--timeout', '1');

      expect(code).toBe(1);
      expect(output.stderr.match(/note: reading Slipway-RolloutLogs\S+ failed/g)).toHaveLength(1);
      expect(output.stderr).toMatch(
        /no rollout started for runs\/c\/model\.tar\.gz in time: only a deployment or a duplicate shows without the rollout function's log, and reading \S+ failed: not authorized .*\(it needs logs:FilterLogEvents\)/,
      );
    });

    it('exits 1 naming the error once the rollout function failed on the upload at every attempt Lambda makes', async () => {
      ecs
        .on(RegisterTaskDefinitionCommand)
        .rejects(
          new AccessDeniedException({ message: 'not authorized: ecs:RegisterTaskDefinition', $metadata: {} }),
        );
      s3.on(PutObjectCommand).callsFake(async () => {
        // The first attempt and Lambda's 2 retries.
        await invokeRollout(
          modelEvent({ key: KEY, versionId: 'vc', etag: 'etag-c', time: '2026-03-01T14:00:00Z' }),
          3,
        );
        return { ETag: '"etag-c"', VersionId: 'vc' };
      });

      const code = await deployWait('--timeout', '1');

      expect(code).toBe(1);
      const result = JSON.parse(output.stdout) as { outcome: string; reason: string };
      expect(result.outcome).toBe('failed');
      expect(result.reason).toMatch(
        /^fail: the rollout function failed on it 3 times, last with ROLLOUT_ACCESS_DENIED: .*ecs:RegisterTaskDefinition/,
      );
      expect(output.stderr).toMatch(/failure queue/);
    });

    it('counts each failed attempt once, though each poll reads the last minute of the log again', async () => {
      ecs
        .on(RegisterTaskDefinitionCommand)
        .rejects(
          new AccessDeniedException({ message: 'not authorized: ecs:RegisterTaskDefinition', $metadata: {} }),
        );
      const uploadedAt = Date.parse('2026-03-01T14:00:00Z');
      await invokeRollout(
        modelEvent({ key: KEY, versionId: 'vc', etag: 'etag-c', time: '2026-03-01T14:00:00Z' }),
      );
      const attemptLines = logged;
      // Lambda's first attempt and its 2 retries, a minute apart: each poll finds one more.
      const attemptTimes = [70_000, 130_000, 190_000].map((ms) => uploadedAt + ms);
      let polls = 0;
      logs.on(FilterLogEventsCommand).callsFake((input: FilterLogEventsCommandInput) => {
        polls++;
        const events = attemptTimes
          .slice(0, polls)
          .flatMap((timestamp, attempt) =>
            attemptLines.map((message, i) => ({ eventId: `${attempt}-${i}`, timestamp, message })),
          );
        return { events: events.filter((e) => e.timestamp >= input.startTime!) };
      });
      const where = await resolveWhere({ stateDir: '.slipway', cloud: true, stack: 'Slipway' });
      const uploaded = {
        uri: `s3://${MODELS_BUCKET}/${KEY}?versionId=vc`,
        size: BYTES.length,
        lastModified: new Date(uploadedAt),
        etag: 'etag-c',
        versionId: 'vc',
      };

      const found = await findDeployment(where, KEY, uploaded, await snapshot(where), {
        deadline: Date.now() + 10_000,
        intervalMs: 0,
      });

      expect(found).toMatchObject({
        kind: 'failed',
        detail: expect.stringMatching(
          /^the rollout function failed on it 3 times, last with ROLLOUT_ACCESS_DENIED/,
        ),
      });
      expect(logs.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input)).toStrictEqual([
        { logGroupName: LOG_GROUP, startTime: uploadedAt },
        { logGroupName: LOG_GROUP, startTime: attemptTimes[0]! - LATE_EVENT_WINDOW_MS },
        { logGroupName: LOG_GROUP, startTime: attemptTimes[1]! - LATE_EVENT_WINDOW_MS },
      ]);
    });
  });

  it('slipway deploy --cloud refuses a key the rollout would never see, before any upload', async () => {
    stackWith(outputs);
    const code = await runCli([
      'node',
      'slipway',
      'deploy',
      tarball,
      '--cloud',
      '--key',
      'runs/c/model.onnx',
    ]);
    expect(code).toBe(1);
    expect(output.stderr).toMatch(/must be a relative key ending in model\.tar\.gz/);
    expect(s3.calls()).toHaveLength(0);
  });

  it('slipway predict --cloud posts to the load balancer named by the stack outputs', async () => {
    const seen: { path?: string; body?: string } = {};
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        Object.assign(seen, { path: req.url, body });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ predictions: [{ label: '7', scores: [0.9] }] }));
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      stackWith({ ...outputs, [STACK_OUTPUTS.loadBalancerUrl]: url });

      const code = await runCli([
        'node',
        'slipway',
        'predict',
        '--cloud',
        '--data',
        '{"instances": [[0.5]]}',
        '--json',
      ]);

      expect(code).toBe(0);
      expect(seen).toEqual({ path: '/invocations', body: '{"instances": [[0.5]]}' });
      expect(JSON.parse(output.stdout)).toEqual({ predictions: [{ label: '7', scores: [0.9] }] });
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it('slipway predict --cloud says to pass --url when the stack has no LoadBalancerUrl output', async () => {
    const { [STACK_OUTPUTS.loadBalancerUrl]: _url, ...withoutUrl } = outputs;
    stackWith(withoutUrl);
    const code = await runCli(['node', 'slipway', 'predict', '--cloud', '--data', '{"instances": [[0.5]]}']);
    expect(code).toBe(1);
    expect(output.stderr).toMatch(/has no LoadBalancerUrl output; pass --url/);
  });
});
