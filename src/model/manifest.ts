import { z } from 'zod';
import { ArtifactError } from './errors.ts';
import { DATATYPES } from './types.ts';
import type { Manifest } from './types.ts';

const tensorSpecSchema = z.object({
  name: z.string().min(1),
  datatype: z.enum(DATATYPES),
  shape: z.array(z.number().int().min(-1)),
});

/** Zod schema of `manifest.json`; unknown keys are dropped so newer writers stay readable. */
export const manifestSchema = z.object({
  name: z.string().min(1).max(256),
  version: z.string().min(1).max(256),
  createdAt: z.iso.datetime({ offset: true }),
  inputs: z.array(tensorSpecSchema),
  outputs: z.array(tensorSpecSchema).min(1),
  labels: z.array(z.string()).optional(),
  metrics: z.record(z.string(), z.number().refine(Number.isFinite, 'expected a finite number')).optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits'),
  framework: z.string().optional(),
});

function formatPath(path: readonly PropertyKey[]): string {
  let out = 'manifest';
  for (const part of path) {
    out += typeof part === 'number' ? `[${part}]` : `.${String(part)}`;
  }
  return out;
}

function preview(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = typeof value;
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  const got = 'input' in issue ? `, got ${preview(issue.input)}` : '';
  switch (issue.code) {
    case 'invalid_value':
      return `${where}: expected one of ${issue.values.map(String).join(', ')}${got}`;
    case 'invalid_type':
      return `${where}: expected ${issue.expected}${got}`;
    default:
      return `${where}: ${issue.message}${got}`;
  }
}

/**
 * Validates a parsed `manifest.json`; throws ArtifactError `ARTIFACT_BAD_MANIFEST` naming each bad field and value.
 *
 * @example parseManifest(JSON.parse(text))
 */
export function parseManifest(json: unknown): Manifest {
  const result = manifestSchema.safeParse(json, { reportInput: true });
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new ArtifactError('ARTIFACT_BAD_MANIFEST', problems.join('; '), { cause: result.error });
  }
  return result.data;
}

/** Input of {@link createManifest}: a manifest whose `createdAt` defaults to now. */
export type ManifestInput = Omit<Manifest, 'createdAt'> & { readonly createdAt?: string | Date };

/**
 * Builds a validated manifest (used by trainers before packing); throws like {@link parseManifest}.
 *
 * @example createManifest({ name: 'mnist', version: '3', sha256: await sha256File(onnx), inputs, outputs })
 */
export function createManifest(input: ManifestInput): Manifest {
  const createdAt =
    input.createdAt instanceof Date
      ? input.createdAt.toISOString()
      : (input.createdAt ?? new Date().toISOString());
  return parseManifest({ ...input, createdAt });
}
