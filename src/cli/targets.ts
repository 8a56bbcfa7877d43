import type { Command } from 'commander';
import { DEFAULT_STACK_NAME } from '../names.ts';
import { DEFAULT_STATE_DIR } from '../local/state-dir.ts';
import type { DeployTarget, DeploymentInfo } from '../rollout/deploy-target.ts';
import type { CloudContext } from './cloud.ts';
import { RemoteTwinTarget, TwinClient } from './twin-client.ts';

/** Flags shared by commands that work on the twin or, with --cloud, on the deployed stack. */
export interface WhereFlags {
  stateDir: string;
  cloud?: boolean;
  stack: string;
}

/** Adds --state-dir, --cloud and --stack to a command. */
export function whereOptions(command: Command): Command {
  return command
    .option('--state-dir <dir>', 'state directory of the local twin', DEFAULT_STATE_DIR)
    .option(
      '--cloud',
      'act on the deployed stack (reads its CloudFormation outputs) instead of the local twin',
    )
    .option('--stack <name>', 'CloudFormation stack name for --cloud', DEFAULT_STACK_NAME);
}

/** The service a command acts on. */
export type Where =
  | { readonly kind: 'local'; readonly client: TwinClient; readonly target: DeployTarget }
  | { readonly kind: 'cloud'; readonly cloud: CloudContext; readonly target: DeployTarget };

/** Connects to the local twin, or reads the deployed stack with --cloud. */
export async function resolveWhere(flags: WhereFlags): Promise<Where> {
  if (flags.cloud) {
    // Loaded only for --cloud: the AWS clients cost a twin command most of its start-up.
    const { cloudContext } = await import('./cloud.ts');
    const cloud = await cloudContext(flags.stack);
    return { kind: 'cloud', cloud, target: cloud.target };
  }
  const client = await TwinClient.connect(flags.stateDir);
  return { kind: 'local', client, target: new RemoteTwinTarget(client) };
}

/** One line of live progress for a deployment being followed. */
export function progressLine(d: DeploymentInfo): string {
  return `${d.id} ${d.rolloutState} ${d.runningCount}/${d.desiredCount} running${d.failedTasks ? `, ${d.failedTasks} failed` : ''}${d.reason ? ` - ${d.reason}` : ''}`;
}

/** Prints progress lines only when they change (a live status for long waits). */
export function progressPrinter(enabled: boolean): (d: DeploymentInfo) => void {
  let last = '';
  return (d) => {
    const line = progressLine(d);
    if (!enabled || line === last) return;
    last = line;
    process.stderr.write(`  ${new Date().toISOString().slice(11, 19)} ${line}\n`);
  };
}
