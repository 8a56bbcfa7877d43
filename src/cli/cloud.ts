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
 * A followed log is read again from this long before the newest event read so far. CloudWatch Logs
 * makes events readable late, each log stream (one per Lambda instance) on its own, so an event can
 * turn up after a newer one: one up to this much older than the newest read is still found, and a
 * minute allows for delays far longer than usual. The rollout function logs a few lines per event,
 * so reading the span again costs little.
 */
export const LATE_EVENT_WINDOW_MS = 60_000;

/** One event of a log, as FilterLogEvents returns it. */
export interface LogEvent {
  readonly eventId: string;
  /** Epoch milliseconds. */
  readonly timestamp: number;
  readonly message: string;
}

/**
 * The rollout function's log group in CloudWatch Logs, read with FilterLogEvents. Only `deploy
 * --wait` reads it, so the CloudWatch Logs client loads then, not with every `--cloud` command.
 */
export class RolloutLog {
  #client: CloudWatchLogsClient | undefined;

  constructor(readonly logGroupName: string) {}

  /** Follows the log from `startTime` (epoch milliseconds) on; see {@link LogTail}. */
  follow(startTime: number): LogTail {
    return new LogTail((from) => this.#eventsSince(from), startTime);
  }

  /** Every event logged at or after `startTime`, oldest first, from every page. */
  async #eventsSince(startTime: number): Promise<LogEvent[]> {
    const sdk = await import('@aws-sdk/client-cloudwatch-logs');
    this.#client ??= new sdk.CloudWatchLogsClient({});
    const events: LogEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#client.send(
        new sdk.FilterLogEventsCommand({
          logGroupName: this.logGroupName,
          startTime,
          ...(nextToken === undefined ? {} : { nextToken }),
        }),
      );
      // FilterLogEvents sets all three; the SDK types every field as optional.
      for (const { eventId, timestamp, message } of page.events ?? []) {
        if (eventId !== undefined && timestamp !== undefined && message !== undefined) {
          events.push({ eventId, timestamp, message });
        }
      }
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
    return events;
  }
}

/**
 * A log followed from a start time: each {@link LogTail.read} returns the messages no earlier read
 * returned. A read starts {@link LATE_EVENT_WINDOW_MS} before the newest event read so far (never
 * before the start time), and the events it gets again are known by their ids, which it remembers
 * for as long as a read can return them.
 */
export class LogTail {
  readonly #eventsSince: (startTime: number) => Promise<LogEvent[]>;
  readonly #startTime: number;
  #newest: number;
  /** The id and timestamp of each event read at or after where the next read starts. */
  readonly #seen = new Map<string, number>();

  constructor(eventsSince: (startTime: number) => Promise<LogEvent[]>, startTime: number) {
    this.#eventsSince = eventsSince;
    this.#startTime = startTime;
    this.#newest = startTime;
  }

  /** The messages logged since the start time that no earlier read returned, oldest first. */
  async read(): Promise<string[]> {
    // Nothing changes until every page is in: a read that fails leaves the next one where it was.
    const events = await this.#eventsSince(this.#nextStart());
    const messages: string[] = [];
    for (const { eventId, timestamp, message } of events) {
      if (this.#seen.has(eventId)) continue;
      this.#seen.set(eventId, timestamp);
      this.#newest = Math.max(this.#newest, timestamp);
      messages.push(message);
    }
    const next = this.#nextStart();
    for (const [eventId, timestamp] of this.#seen) if (timestamp < next) this.#seen.delete(eventId);
    return messages;
  }

  #nextStart(): number {
    return Math.max(this.#startTime, this.#newest - LATE_EVENT_WINDOW_MS);
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
