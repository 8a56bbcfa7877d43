/**
 * How a long-running command (`slipway up`) stops on signals: the first SIGINT, SIGTERM or SIGHUP
 * stops it cleanly, a second one forces it.
 */

/** What a signal means to a command that is stopping. */
export type SignalMeaning = 'stop' | 'copy' | 'force';

/**
 * How long after a signal the same signal counts as a copy of it. Under `npm start` one Ctrl-C
 * reaches the command twice: the terminal signals its whole foreground process group, and npm
 * forwards the SIGINT (or SIGTERM) it got as well, a few milliseconds later. A person pressing
 * Ctrl-C again takes longer than this.
 */
export const SAME_SIGNAL_MS = 200;

/**
 * Tells what each stop signal means: the first stops; the same signal within
 * {@link SAME_SIGNAL_MS} of it is npm's copy, counted once; any other later one (a second press,
 * or another signal, from another source) forces.
 *
 * @example const meaning = signalCounter(); meaning('SIGINT') // 'stop'
 */
export function signalCounter(now: () => number = Date.now): (signal: NodeJS.Signals) => SignalMeaning {
  let first: { readonly signal: NodeJS.Signals; readonly at: number; copied: boolean } | undefined;
  return (signal) => {
    const at = now();
    if (first === undefined) {
      first = { signal, at, copied: false };
      return 'stop';
    }
    if (!first.copied && signal === first.signal && at - first.at < SAME_SIGNAL_MS) {
      first.copied = true;
      return 'copy';
    }
    return 'force';
  };
}

/** What stopping on signals needs of the running thing. */
export interface Stoppable {
  /** Stops cleanly; may take a while. */
  stop(): Promise<void>;
  /** Process ids to SIGKILL when the stop is forced. */
  pids(): readonly number[];
}

/** Options of {@link stopOnSignal}. */
export interface StopOptions {
  /**
   * Also stop, as on SIGHUP, once the parent process has gone (this process was handed to init or
   * a subreaper). Under `npx` the command runs below a shell that npm signals and that dies without
   * passing the signal on: the command would run on, orphaned. @default false
   */
  readonly withParent?: boolean;
  /** How often to look at the parent. @default 1000 */
  readonly parentCheckMs?: number;
}

/**
 * Resolves once a SIGINT, SIGTERM or SIGHUP (or, with `withParent`, the parent's exit) has stopped
 * `target` cleanly. A second signal while it stops (not npm's copy of the first) kills `target`'s
 * processes and exits with 130; the parent's exit never forces.
 *
 * @param parts what the stop stops, for the message (`training, tasks, load balancer, S3`)
 */
export function stopOnSignal(
  target: Stoppable,
  say: (message: string) => void,
  parts: string,
  options: StopOptions = {},
): Promise<void> {
  return new Promise((resolve) => {
    const meaning = signalCounter();
    let stopping = false;
    let parentWatch: NodeJS.Timeout | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      stopping = true;
      const what = meaning(signal);
      if (what === 'copy') return;
      if (what === 'force') {
        say(`${signal} again: killing the tasks now`);
        for (const pid of target.pids()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone (ESRCH): nothing left to kill.
          }
        }
        process.exit(130);
      }
      say(`${signal}: stopping (${parts}); press Ctrl-C again to force`);
      clearInterval(parentWatch);
      target.stop().then(
        () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          process.off('SIGHUP', onHangup);
          resolve();
        },
        (err: unknown) => {
          say(`stop failed: ${(err as Error).message}`);
          process.exitCode = 1;
          resolve();
        },
      );
    };
    // Closing the terminal: stop as on SIGTERM (by default the process would die on the spot, leaving
    // a detached trainer running). What it prints from now on has nowhere to go: a write error must
    // not end the stop halfway.
    const onHangup = (): void => {
      for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
      onSignal('SIGHUP');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onHangup);
    if (options.withParent) {
      const parent = process.ppid;
      parentWatch = setInterval(() => {
        if (stopping || process.ppid === parent) return;
        say(`the process that started it (pid ${parent}) has exited`);
        onHangup();
      }, options.parentCheckMs ?? 1000);
      parentWatch.unref();
    }
  });
}
