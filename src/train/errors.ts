import { SlipwayError } from '../errors.ts';

/** Stable codes of {@link TrainingError}. */
export const TRAINING_ERROR_CODES = [
  /** A hyperparameter is unknown, missing, or not of its declared type. */
  'TRAINING_HYPERPARAMETER',
  /** A channel the job needs is not configured or its directory is absent. */
  'TRAINING_MISSING_CHANNEL',
  /** A channel directory holds no files. */
  'TRAINING_EMPTY_CHANNEL',
  /** A config file under input/config is not valid JSON or has the wrong shape. */
  'TRAINING_BAD_CONFIG',
  /** The job name breaks SageMaker's naming rule. */
  'TRAINING_BAD_JOB_NAME',
  /** The output location cannot be written. */
  'TRAINING_OUTPUT_UNWRITABLE',
  /** The training entrypoint failed (the message carries the failure file's reason). */
  'TRAINING_FAILED',
  /** The job was stopped (signal or abort) before it finished. */
  'TRAINING_STOPPED',
  /** A SageMaker job spec is invalid (e.g. an EFS channel without VPC config). */
  'TRAINING_BAD_SPEC',
] as const;

/** One of {@link TRAINING_ERROR_CODES}. */
export type TrainingErrorCode = (typeof TRAINING_ERROR_CODES)[number];

/** A training job could not run or failed; `code` says why. */
export class TrainingError extends SlipwayError {
  declare readonly code: TrainingErrorCode;

  constructor(code: TrainingErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A hyperparameter is unknown, missing, or has a value of the wrong type. */
export class HyperparameterError extends TrainingError {
  /** The offending key. */
  readonly key: string;

  constructor(key: string, message: string) {
    super('TRAINING_HYPERPARAMETER', message);
    this.key = key;
  }
}

/** True when `err` is a {@link TrainingError}, optionally with the given code. */
export function isTrainingError(err: unknown, code?: TrainingErrorCode): err is TrainingError {
  return err instanceof TrainingError && (code === undefined || err.code === code);
}
