// The training image's ENTRYPOINT: SageMaker runs `<image> train`, so `train` dispatches to the
// training entrypoint (the MNIST example, or SLIPWAY_TRAIN_ENTRY) in this same process, so that
// SageMaker's SIGTERM reaches runTrainingJob directly (no signal forwarding through a parent).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ENV } from '../names.ts';

const here = fileURLToPath(import.meta.url);
const ext = here.endsWith('.ts') ? '.ts' : '.js';
const [command, ...rest] = process.argv.slice(2);

if (command !== 'train') {
  process.stderr.write(
    `usage: <image> train  (SageMaker's training contract); got ${command === undefined ? 'no command' : JSON.stringify(command)}\n`,
  );
  process.exit(64);
}
const override = process.env[ENV.trainEntry];
const entry =
  override !== undefined && override !== ''
    ? resolve(override)
    : join(dirname(here), 'examples', 'mnist', `train${ext}`);
if (!existsSync(entry)) {
  process.stderr.write(`training entrypoint ${entry} does not exist (check ${ENV.trainEntry})\n`);
  process.exit(66);
}
// Entrypoints run their job only when they are the main module (argv[1]); make this one it.
process.argv.splice(1, process.argv.length - 1, entry, ...rest);
await import(pathToFileURL(entry).href);
