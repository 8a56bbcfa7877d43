import { SlipwayError } from '../../../errors.ts';

/** Stable codes of {@link MnistDataError}. */
export const MNIST_DATA_ERROR_CODES = [
  /** The data file is missing from the channel. */
  'MNIST_DATA_MISSING',
  /** The file is not a Slipway digits file (wrong magic or version). */
  'MNIST_DATA_FORMAT',
  /** The file is shorter or longer than its header says. */
  'MNIST_DATA_TRUNCATED',
  /** The payload checksum or a label is wrong. */
  'MNIST_DATA_CORRUPT',
  /** A prepare option is out of range. */
  'MNIST_DATA_OPTION',
] as const;

/** One of {@link MNIST_DATA_ERROR_CODES}. */
export type MnistDataErrorCode = (typeof MNIST_DATA_ERROR_CODES)[number];

/** A digits data file is missing, truncated or corrupt; the message names the file and the problem. */
export class MnistDataError extends SlipwayError {
  declare readonly code: MnistDataErrorCode;

  constructor(code: MnistDataErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A checkpoint cannot be resumed (made for a different model, or damaged). */
export class MnistCheckpointError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MNIST_CHECKPOINT', message, options);
  }
}
