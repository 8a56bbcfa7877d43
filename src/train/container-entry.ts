// The training image's ENTRYPOINT: SageMaker runs `<image> train`, so `train` dispatches to the
// training entrypoint (the MNIST example, or SLIPWAY_TRAIN_ENTRY) in this same process, so that
// SageMaker's SIGTERM reaches runTrainingJob directly (no signal forwarding through a parent).
import { readdirSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ENV } from '../names.ts';
import { jobPaths, resolveJobRoot } from './paths.ts';
import { writeFailure } from './run-job.ts';

const here = fileURLToPath(import.meta.url);
const ext = here.endsWith('.ts') ? '.ts' : '.js';
const [command, ...rest] = process.argv.slice(2);

if (command !== 'train') {
  process.stderr.write(
    `usage: <image> train  (SageMaker's training contract); got ${command === undefined ? 'no command' : JSON.stringify(command)}\n`,
  );
  process.exit(64);
}
const paths = jobPaths(resolveJobRoot());

/** Ends the job as failed the way the contract says: the reason on stderr and in output/failure. */
async function fail(reason: string, code: number): Promise<never> {
  process.stderr.write(`${reason}\n`);
  await writeFailure(paths, reason).catch(() => undefined);
  process.exit(code);
}

const override = process.env[ENV.trainEntry];
const configured =
  override !== undefined && override !== ''
    ? resolve(override)
    : join(dirname(here), 'examples', 'mnist', `train${ext}`);
// The real path: Node loads the module by it, and an entrypoint that runs its job only when it is
// the main module compares its own URL with argv[1]; a symlink in argv[1] would make it do nothing.
const entry = await realpath(configured).catch(() =>
  fail(`training entrypoint ${configured} does not exist (check ${ENV.trainEntry})`, 66),
);
// Entrypoints run their job only when they are the main module (argv[1]); make this one it.
process.argv.splice(1, process.argv.length - 1, entry, ...rest);
// runTrainingJob ends the process itself. Reaching the end of the event loop with nothing in model/
// means the entrypoint never ran a job (or forgot to write the model): a failure, not a silent success.
process.once('beforeExit', (code) => {
  if (code !== 0) return;
  const written = (() => {
    try {
      return readdirSync(paths.model).length > 0;
    } catch {
      return false;
    }
  })();
  if (!written) {
    void fail(
      `training entrypoint ${entry} ended without writing a model to ${paths.model}: ` +
        'it never ran its training job (does it run only as the main module?)',
      1,
    );
  }
});
await import(pathToFileURL(entry).href);
