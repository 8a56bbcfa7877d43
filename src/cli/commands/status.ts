import type { Command } from 'commander';
import { formatStatus, rolloutStatus, waitUntilSteady } from '../../rollout/operations.ts';
import { printJson, printLines, secondsOption } from '../options.ts';
import { resolveWhere, whereOptions } from '../targets.ts';
import type { WhereFlags } from '../targets.ts';

interface StatusFlags extends WhereFlags {
  json?: boolean;
  wait?: boolean;
  timeout: string;
}

/** Registers `slipway status`: the model each task serves and the deployments. */
export function registerStatus(program: Command): void {
  whereOptions(
    program
      .command('status')
      .description('Show the service: the model each task serves, the deployments and why a rollout failed.'),
  )
    .option('--json', 'print machine-readable JSON')
    .option(
      '--wait',
      'first wait until no rollout is in progress (exit 1 if one still is at --timeout): the model shown then is the one that serves',
    )
    .option('--timeout <seconds>', 'with --wait, give up after this long', '1800')
    .action(async (flags: StatusFlags) => {
      const timeoutMs = secondsOption(flags.timeout, '--timeout');
      const where = await resolveWhere(flags);
      const steady = flags.wait
        ? await waitUntilSteady(where.target, {
            intervalMs: where.kind === 'cloud' ? 10_000 : 300,
            timeoutMs,
          })
        : undefined;
      if (where.kind === 'cloud') {
        const status = steady ?? (await rolloutStatus(where.target));
        if (flags.json) printJson({ stack: where.cloud.stackName, service: status });
        else printLines([`stack ${where.cloud.stackName}`, ...formatStatus(status)]);
        return;
      }
      const status = await where.client.status();
      if (flags.json) {
        printJson(status);
        return;
      }
      const lines = [
        `local twin (pid ${status.twin.pid}) at ${status.twin.url}; S3 ${status.twin.s3Endpoint}`,
        ...(status.training.state !== 'idle'
          ? [
              `training: ${status.training.state}${status.training.detail ? ` - ${status.training.detail}` : ''}`,
            ]
          : []),
        ...formatStatus(status.service),
        'tasks:',
        ...(status.tasks.length === 0
          ? ['  (none: no model deployed yet)']
          : status.tasks.map(
              (t) =>
                `  ${t.id} pid ${t.pid ?? '?'} ${t.url ?? '(port not known yet)'} ${t.lastStatus} model ${t.modelUri}` +
                `${t.modelVersion ? ` (version ${t.modelVersion})` : ''}` +
                `${status.targets.find((x) => x.id === t.id) ? ` [${status.targets.find((x) => x.id === t.id)?.health}]` : ''}`,
            )),
      ];
      const failed = status.deployments.filter((d) => d.rolloutState === 'FAILED').slice(0, 3);
      if (failed.length > 0) {
        lines.push('recent failed rollouts:');
        for (const d of failed) lines.push(`  ${d.id} ${d.modelUri}`, `    ${d.rolloutStateReason}`);
      }
      if (status.recentEvents.length > 0) {
        lines.push('recent upload events:');
        for (const e of status.recentEvents.slice(0, 5)) lines.push(`  ${e.time} ${e.decision} ${e.key}`);
      }
      printLines(lines);
    });
}
