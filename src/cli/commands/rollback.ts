import type { Command } from 'commander';
import { SlipwayError } from '../../errors.ts';
import { followDeployment, rollbackModel } from '../../rollout/operations.ts';
import { printJson, secondsOption } from '../options.ts';
import { progressPrinter, resolveWhere, whereOptions } from '../targets.ts';
import type { WhereFlags } from '../targets.ts';

interface RollbackFlags extends WhereFlags {
  wait?: boolean;
  timeout: string;
  json?: boolean;
}

/** Registers `slipway rollback`: back to the previous model. */
export function registerRollback(program: Command): void {
  whereOptions(
    program
      .command('rollback')
      .description(
        'Roll the service back to the previous model (a new rolling deployment of the earlier revision).',
      ),
  )
    .option('--wait', 'follow the rollback until it completes')
    .option('--timeout <seconds>', 'give up waiting after this long', '900')
    .option('--json', 'print machine-readable JSON')
    .action(async (flags: RollbackFlags) => {
      const timeoutMs = secondsOption(flags.timeout, '--timeout');
      const where = await resolveWhere(flags);
      const result = await rollbackModel(where.target);
      if (!flags.json) {
        process.stdout.write(
          `rolling back: deployment ${result.deploymentId} (${result.previousRevision} -> ${result.revision}) pins ${result.model?.uri ?? 'no model'}\n`,
        );
      }
      if (!flags.wait) {
        if (flags.json) printJson(result);
        return;
      }
      const followed = await followDeployment(where.target, result.deploymentId, {
        intervalMs: where.kind === 'cloud' ? 15_000 : 300,
        timeoutMs,
        onProgress: progressPrinter(!flags.json),
      });
      if (flags.json) printJson({ ...result, outcome: followed.outcome, reason: followed.reason });
      else
        process.stdout.write(
          `rollback ${followed.outcome}${followed.reason ? `: ${followed.reason}` : ''}\n`,
        );
      if (followed.outcome !== 'completed') {
        throw new SlipwayError(
          'ROLLBACK_FAILED',
          `rollback ${followed.outcome}: ${followed.reason ?? 'no reason given'}`,
        );
      }
    });
}
