/**
 * The SageMaker input modes a Slipway training job can use. The toolkit (`readTrainingEnv`) and
 * every entrypoint read a channel as files under `input/data/<channel>/`: File mode copies them
 * there before training, FastFile mode presents them there and streams each from S3 on read.
 * Pipe mode puts no files there at all, only a FIFO per channel and epoch
 * (`input/data/<channel>_<epoch>`), so a Pipe job would fail at run time on SageMaker; every entry
 * point refuses it up front instead.
 */

/** Input modes that present a channel as files, in the order help texts list them. */
export const SUPPORTED_INPUT_MODES = ['File', 'FastFile'] as const;

/** An input mode Slipway's training toolkit can read. */
export type InputMode = (typeof SUPPORTED_INPUT_MODES)[number];

/** True for File and FastFile (exact, case-sensitive: the values SageMaker takes). */
export function isSupportedInputMode(mode: unknown): mode is InputMode {
  return (SUPPORTED_INPUT_MODES as readonly unknown[]).includes(mode);
}

/** True for Pipe in any case: the mode that presents no files (unknown modes are only unknown). */
export function isPipeMode(mode: unknown): boolean {
  return typeof mode === 'string' && mode.toLowerCase() === 'pipe';
}

/**
 * Why `mode` cannot be used, naming the modes that can: one sentence for an error message.
 *
 * @example unsupportedInputMode('Pipe', 'channel "train"')
 */
export function unsupportedInputMode(mode: unknown, where: string): string {
  const supported = `use ${SUPPORTED_INPUT_MODES.join(' or ')}`;
  if (isPipeMode(mode)) {
    return (
      `${where}: input mode Pipe is not supported: Slipway's training toolkit reads each channel as files ` +
      `under input/data/<channel>/, and Pipe mode streams it through a FIFO instead; ${supported} ` +
      '(FastFile also streams from S3, on read)'
    );
  }
  return `${where}: unknown input mode ${JSON.stringify(mode)}; ${supported}`;
}
