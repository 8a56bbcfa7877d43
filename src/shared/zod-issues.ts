/**
 * How a schema's refusal reads in an error message: each issue as `path: message`, in one line. No
 * AWS or store imports, so the rollout Lambda and the scripts share it.
 */
import type { z } from 'zod';

/**
 * The issues of `error` as `path: message; path: message`, where an issue about the value as a
 * whole (no path) is named `(whole)`.
 *
 * @example describeZodIssues(parsed.error, 'event') // 'detail.object.size: Invalid input: ...'
 */
export function describeZodIssues(error: z.ZodError, whole: string): string {
  return error.issues.map((issue) => `${issue.path.join('.') || `(${whole})`}: ${issue.message}`).join('; ');
}
