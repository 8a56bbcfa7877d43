import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { ECSClient, RegisterTaskDefinitionCommand, UpdateServiceCommand } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../../helpers/capture-output.ts';
import type { CapturedOutput } from '../../helpers/capture-output.ts';
import { runCli } from '../../../src/cli/program.ts';
import { STACK_OUTPUTS } from '../../../src/names.ts';
import { EcsDeployTarget } from '../../../src/rollout/ecs-target.ts';
import { rolloutModelEvent } from '../../../src/rollout/operations.ts';
import { CLUSTER, MODELS_BUCKET, SERVICE, modelEvent, simulateEcs } from '../../rollout/fixtures.ts';
import type { EcsWorld } from '../../rollout/fixtures.ts';

const cloudformation = mockClient(CloudFormationClient);
const ecs = mockClient(ECSClient);

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
