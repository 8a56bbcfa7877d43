import { TrainingError } from './errors.ts';

/** SageMaker's training job name rule: 1-63 chars of [a-zA-Z0-9-], no leading or trailing hyphen. */
export const JOB_NAME_PATTERN = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;

/**
 * Throws TrainingError `TRAINING_BAD_JOB_NAME` unless `name` follows SageMaker's rule.
 *
 * @example validateJobName('slipway-mnist-2026-01-01-12-00-00-000')
 */
export function validateJobName(name: string): string {
  if (!JOB_NAME_PATTERN.test(name)) {
    const why =
      name.length === 0
        ? 'it is empty'
        : name.length > 63
          ? `it has ${name.length} characters (at most 63)`
          : /[^a-zA-Z0-9-]/.test(name)
            ? `it contains ${JSON.stringify(/[^a-zA-Z0-9-]/.exec(name)?.[0])} (only letters, digits and hyphens)`
            : 'it starts or ends with a hyphen';
    throw new TrainingError('TRAINING_BAD_JOB_NAME', `invalid job name ${JSON.stringify(name)}: ${why}`);
  }
  return name;
}

/**
 * A unique job name the way the SageMaker SDK makes them: `<base>-YYYY-MM-DD-HH-MM-SS-mmm` (UTC).
 *
 * @example defaultJobName('slipway-mnist') // 'slipway-mnist-2026-11-27-03-04-05-123'
 */
export function defaultJobName(base = 'slipway-mnist', now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[:.T]/g, '-').replace(/Z$/, '');
  // Keep the whole stamp (uniqueness) and trim the base so the result still fits 63 characters.
  return validateJobName(`${base.slice(0, 63 - stamp.length - 1).replace(/-+$/, '')}-${stamp}`);
}
