import { Command, CommanderError } from 'commander';
import { isSlipwayError } from '../errors.ts';
import { commands } from './registry.ts';

/**
 * Build the `slipway` command. When `argv` names a subcommand only that one is loaded (the
 * inference tasks start through `slipway serve`, so its start-up time is rollout time); otherwise
 * every subcommand is loaded so `--help` can list them.
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('slipway')
    .description(
      'ML training and deployment on AWS: train on SageMaker, serve ONNX on ECS Fargate, roll out on upload.\n' +
        'Every command works against the local twin by default (see `slipway up`).',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const requested = argv.slice(2).find((arg) => !arg.startsWith('-'));
  const only = commands.find((entry) => entry.name === requested);
  const registers = await Promise.all((only ? [only] : commands).map((entry) => entry.load()));
  for (const register of registers) register(program);
  return program;
}

/** Run the CLI and return the process exit code; user mistakes print one line and a hint. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isSlipwayError(err)) {
      process.stderr.write(`slipway: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(
      `slipway: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return 70;
  }
}
