import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { ECSClient } from '@aws-sdk/client-ecs';
import { SlipwayError, UsageError } from '../errors.ts';
import { DEFAULT_STACK_NAME, STACK_OUTPUTS } from '../names.ts';
import { EcsDeployTarget } from '../rollout/ecs-target.ts';
import { createStore } from '../store/create-store.ts';
import type { ObjectStore } from '../store/types.ts';

/** Everything a `--cloud` command needs, read from the deployed stack's outputs. */
export interface CloudContext {
  readonly stackName: string;
  readonly modelsBucket: string;
  readonly loadBalancerUrl: string | undefined;
  readonly target: EcsDeployTarget;
  readonly store: ObjectStore;
  /** The rollout function's log; undefined for a stack deployed before it had the output. */
  readonly rolloutLog: RolloutLog | undefined;
}

/**
 * The rollout function's log group in CloudWatch Logs, read with FilterLogEvents. Only `deploy
 * --wait` reads it, so the CloudWatch Logs client loads then, not with every `--cloud` command.
 */
export class RolloutLog {
  #client: CloudWatchLogsClient | undefined;

  constructor(readonly logGroupName: string) {}

  /** Every message logged at or after `startTime` (epoch milliseconds), oldest first. */
  async messagesSince(startTime: number): Promise<string[]> {
    const sdk = await import('@aws-sdk/client-cloudwatch-logs');
    this.#client ??= new sdk.CloudWatchLogsClient({});
    const messages: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#client.send(
        new sdk.FilterLogEventsCommand({
          logGroupName: this.logGroupName,
          startTime,
          ...(nextToken === undefined ? {} : { nextToken }),
        }),
      );
      for (const event of page.events ?? []) if (event.message !== undefined) messages.push(event.message);
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
    return messages;
  }
}

/** Reads a CloudFormation stack's outputs as a key -> value map. */
export async function describeStackOutputs(stackName: string): Promise<Record<string, string>> {
  const client = new CloudFormationClient({});
  try {
    const res = await client.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = res.Stacks?.[0];
    if (!stack)
      throw new UsageError(
        `stack ${stackName} not found; deploy it first (npm run cdk deploy) or pass --stack`,
      );
    return Object.fromEntries(
      (stack.Outputs ?? []).flatMap((o) =>
        o.OutputKey && o.OutputValue ? [[o.OutputKey, o.OutputValue]] : [],
      ),
    );
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (/does not exist/.test(message)) {
      throw new UsageError(
        `stack ${stackName} does not exist in this account/region; deploy it first or pass --stack`,
        {
          cause: err,
        },
      );
    }
    throw new SlipwayError(
      'CLOUD_UNAVAILABLE',
      `cannot read the outputs of stack ${stackName}: ${message} (check AWS credentials and AWS_REGION)`,
      { cause: err },
    );
  } finally {
    client.destroy();
  }
}

/** Builds the cloud context of `--cloud` commands from the stack's outputs (never hand-copied values). */
export async function cloudContext(stackName = DEFAULT_STACK_NAME): Promise<CloudContext> {
  const outputs = await describeStackOutputs(stackName);
  const need = (key: string): string => {
    const value = outputs[key];
    if (!value) throw new UsageError(`stack ${stackName} has no output ${key}; is it a Slipway stack?`);
    return value;
  };
  const rolloutLogGroup = outputs[STACK_OUTPUTS.rolloutLogGroup];
  return {
    stackName,
    modelsBucket: need(STACK_OUTPUTS.modelsBucket),
    loadBalancerUrl: outputs[STACK_OUTPUTS.loadBalancerUrl],
    target: new EcsDeployTarget({
      client: new ECSClient({}),
      cluster: need(STACK_OUTPUTS.cluster),
      service: need(STACK_OUTPUTS.service),
    }),
    store: createStore({}),
    rolloutLog: rolloutLogGroup ? new RolloutLog(rolloutLogGroup) : undefined,
  };
}
