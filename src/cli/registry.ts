import type { Command } from 'commander';

/** Registers one subcommand on the program. */
export type RegisterCommand = (program: Command) => void;

/** A subcommand, loaded on demand so that `slipway serve` does not pay for TensorFlow.js or the CDK. */
export interface CommandEntry {
  readonly name: string;
  readonly load: () => Promise<RegisterCommand>;
}

/** Every subcommand of `slipway`, in the order `--help` lists them. */
export const commands: readonly CommandEntry[] = [
  { name: 'up', load: async () => (await import('./commands/up.ts')).registerUp },
  { name: 'train', load: async () => (await import('./commands/train.ts')).registerTrain },
  { name: 'deploy', load: async () => (await import('./commands/deploy.ts')).registerDeploy },
  { name: 'status', load: async () => (await import('./commands/status.ts')).registerStatus },
  { name: 'rollback', load: async () => (await import('./commands/rollback.ts')).registerRollback },
  { name: 'predict', load: async () => (await import('./commands/predict.ts')).registerPredict },
  { name: 'serve', load: async () => (await import('./commands/serve.ts')).registerServe },
];
