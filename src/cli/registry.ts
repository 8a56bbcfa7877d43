import type { Command } from 'commander';
import { registerDeploy } from './commands/deploy.ts';
import { registerPredict } from './commands/predict.ts';
import { registerRollback } from './commands/rollback.ts';
import { registerServe } from './commands/serve.ts';
import { registerStatus } from './commands/status.ts';
import { registerTrain } from './commands/train.ts';
import { registerUp } from './commands/up.ts';

/** Registers one subcommand on the program. */
export type RegisterCommand = (program: Command) => void;

/** Every subcommand of `slipway`, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [
  registerUp,
  registerTrain,
  registerDeploy,
  registerStatus,
  registerRollback,
  registerPredict,
  registerServe,
];
