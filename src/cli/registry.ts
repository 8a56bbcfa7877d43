import type { Command } from 'commander';
import { registerServe } from './commands/serve.ts';

/** Registers one subcommand on the program. */
export type RegisterCommand = (program: Command) => void;

/** Every subcommand of `slipway`, in the order `--help` lists them. */
export const commands: readonly RegisterCommand[] = [registerServe];
