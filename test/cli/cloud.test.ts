import { readdir } from 'node:fs/promises';
import {
  CloudWatchLogsClient,
  FilterLogEventsCommand,
  type FilteredLogEvent,
  type FilterLogEventsCommandInput,
} from '@aws-sdk/client-cloudwatch-logs';
import { mockClient } from 'aws-sdk-client-mock';
import { build } from 'esbuild';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LATE_EVENT_WINDOW_MS, RolloutLog } from '../../src/cli/cloud.ts';

const logs = mockClient(CloudWatchLogsClient);
const LOG_GROUP = 'Slipway-RolloutLogs1A2B3C4D-x1y2z3';
const START = Date.parse('2026-03-01T14:00:00Z');

beforeEach(() => vi.stubEnv('AWS_REGION', 'eu-west-1'));
afterEach(() => {
  vi.unstubAllEnvs();
  logs.reset();
});

/** An event logged `seconds` after START, readable from the `readableFrom`-th FilterLogEvents call on. */
interface Logged {
  readonly eventId: string;
  readonly seconds: number;
  readonly readableFrom: number;
}

/**
 * A log group as FilterLogEvents reads it: the events readable by then (CloudWatch Logs ingests
 * some late), from `startTime` on, oldest first. Returns the inputs of the calls made.
 */
function logGroup(events: readonly Logged[]): () => FilterLogEventsCommandInput[] {
  let calls = 0;
  logs.on(FilterLogEventsCommand).callsFake((input: FilterLogEventsCommandInput) => {
    calls++;
    return {
      events: events
        .filter((e) => e.readableFrom <= calls && START + e.seconds * 1000 >= input.startTime!)
        .sort((a, b) => a.seconds - b.seconds)
        .map((e): FilteredLogEvent => ({
          eventId: e.eventId,
          timestamp: START + e.seconds * 1000,
          message: e.eventId,
        })),
    };
  });
  return () => logs.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input);
}

describe('RolloutLog', () => {
  it('starts each read a late-event window before the newest event read so far, never before the start', async () => {
    const inputs = logGroup([
      { eventId: 'a', seconds: 20, readableFrom: 1 },
      { eventId: 'b', seconds: 90, readableFrom: 2 },
    ]);
    const tail = new RolloutLog(LOG_GROUP).follow(START);

    expect(await tail.read()).toEqual(['a']);
    expect(await tail.read()).toEqual(['b']);
    expect(await tail.read()).toEqual([]);
    expect(inputs()).toStrictEqual([
      { logGroupName: LOG_GROUP, startTime: START },
      // a, 20 s in, is less than the window after the start.
      { logGroupName: LOG_GROUP, startTime: START },
      { logGroupName: LOG_GROUP, startTime: START + 90_000 - LATE_EVENT_WINDOW_MS },
    ]);
  });

  it('returns an event that turns up late, older than one it read, and each event once', async () => {
    logGroup([
      // Where the second read starts: read again, and known.
      { eventId: 'edge', seconds: 120 - LATE_EVENT_WINDOW_MS / 1000, readableFrom: 1 },
      { eventId: 'late', seconds: 100, readableFrom: 2 },
      { eventId: 'newest', seconds: 120, readableFrom: 1 },
      // Two events in one millisecond, the second readable a read later.
      { eventId: 'same-ms-1', seconds: 120, readableFrom: 1 },
      { eventId: 'same-ms-2', seconds: 120, readableFrom: 2 },
    ]);
    const tail = new RolloutLog(LOG_GROUP).follow(START);

    expect(await tail.read()).toEqual(['edge', 'newest', 'same-ms-1']);
    expect(await tail.read()).toEqual(['late', 'same-ms-2']);
    expect(await tail.read()).toEqual([]);
  });

  it('reads every page of each read, with the same startTime', async () => {
    logs
      .on(FilterLogEventsCommand, { logGroupName: LOG_GROUP, startTime: START, nextToken: undefined })
      .resolves({ events: [], nextToken: 'page-2' })
      .on(FilterLogEventsCommand, { nextToken: 'page-2' })
      .resolves({ events: [{ eventId: 'a', timestamp: START + 1_000, message: 'a' }] });
    const tail = new RolloutLog(LOG_GROUP).follow(START);

    expect(await tail.read()).toEqual(['a']);
    expect(logs.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input)).toStrictEqual([
      { logGroupName: LOG_GROUP, startTime: START },
      { logGroupName: LOG_GROUP, startTime: START, nextToken: 'page-2' },
    ]);
  });

  it('reads the same span again after a read that failed part way, losing nothing', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    logs
      .on(FilterLogEventsCommand, { nextToken: undefined })
      .resolves({
        events: [{ eventId: 'a', timestamp: START + 90_000, message: 'a' }],
        nextToken: 'page-2',
      })
      .on(FilterLogEventsCommand, { nextToken: 'page-2' })
      .rejectsOnce(throttled)
      .resolves({});
    const tail = new RolloutLog(LOG_GROUP).follow(START);

    await expect(tail.read()).rejects.toThrow('Rate exceeded');
    expect(await tail.read()).toEqual(['a']);
    expect(logs.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input.startTime)).toEqual([
      START,
      START,
      START,
      START,
    ]);
  });

  it('leaves the CloudWatch Logs client out of what any command loads until it reads the log, and the ECS and CloudFormation clients out of twin commands until --cloud', async () => {
    const commands = (await readdir('src/cli/commands')).map((file) => `src/cli/commands/${file}`);
    const { metafile } = await build({
      entryPoints: commands,
      bundle: true,
      packages: 'external',
      platform: 'node',
      format: 'esm',
      outdir: 'unused',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });

    // A command's static imports, transitively: what loading it loads.
    const loadedBy = (command: string): Set<string> => {
      const seen = new Set<string>();
      const walk = (path: string): void => {
        if (seen.has(path)) return;
        seen.add(path);
        for (const i of metafile.inputs[path]?.imports ?? []) if (i.kind === 'import-statement') walk(i.path);
      };
      walk(command);
      return seen;
    };
    const loaded = new Set(commands.flatMap((command) => [...loadedBy(command)]));
    const logsClient = '@aws-sdk/client-cloudwatch-logs';

    expect(loaded).toContain('src/cli/cloud.ts');
    expect(loaded).not.toContain(logsClient);

    // The commands that also work on the twin load no ECS or CloudFormation client until --cloud.
    for (const name of ['status', 'rollback', 'deploy', 'predict']) {
      const modules = loadedBy(`src/cli/commands/${name}.ts`);
      expect(modules.size, name).toBeGreaterThan(1);
      for (const client of ['@aws-sdk/client-ecs', '@aws-sdk/client-cloudformation']) {
        expect(modules.has(client), `${name} loads ${client}`).toBe(false);
      }
    }
    expect(metafile.inputs['src/cli/cloud.ts']?.imports).toContainEqual({
      path: logsClient,
      kind: 'dynamic-import',
      external: true,
    });
  });
});
