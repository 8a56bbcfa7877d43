/**
 * The CDK app's one typed configuration: read from CDK context (`cdk.json` or `-c key=value`),
 * validated with zod, with documented defaults. A bad or missing value fails synthesis with a
 * message that names the setting and the value it got.
 */
import { z } from 'zod';
import { SlipwayError } from '../errors.ts';
import { DEFAULT_STACK_NAME, GITHUB_OIDC_ROLES, NO_MODEL_URI } from '../names.ts';
import { ModelRecordSchema } from '../rollout/pinned-model.ts';
import { GITHUB_OIDC_SUBJECTS } from './github-oidc.ts';

/** A configuration value is missing or invalid; the message names the setting. */
export class InfraConfigError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INFRA_CONFIG', message, options);
  }
}

/** How private subnets reach AWS APIs other than S3 (S3 always goes through a free gateway endpoint). */
export const NAT_STRATEGIES = ['single-nat', 'nat-per-az', 'endpoints'] as const;

/** Valid Fargate CPU units and, for each, the memory sizes (MiB) Fargate accepts. */
const FARGATE_MEMORY: Readonly<Record<number, readonly number[]>> = {
  256: [512, 1024, 2048],
  512: [1024, 2048, 3072, 4096],
  1024: [2048, 3072, 4096, 5120, 6144, 7168, 8192],
  2048: range(4096, 16384, 1024),
  4096: range(8192, 30720, 1024),
};

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}

/** CloudWatch Logs retention values the API accepts (days). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

// Context from `-c key=value` always arrives as a string; cdk.json may hold real JSON types.
const bool = z.preprocess(
  (v) => (v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ error: 'must be true or false' }),
);
const int = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v), z.int().min(min).max(max));
const stringList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0)
      : v,
  z.array(z.string()),
);

const githubName = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})$/;
const bucketName = /^(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const cidr = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\/(?:3[0-2]|[12]?\d)$/;

const optionalBucket = z.string().regex(bucketName, 'must be a valid S3 bucket name').optional();

const schema = z
  .object({
    stackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,100}$/, 'must start with a letter; letters, digits and hyphens only')
      .default(DEFAULT_STACK_NAME),
    registryStackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,100}$/, 'must start with a letter; letters, digits and hyphens only')
      .optional(),
    githubOwner: z
      .string({ error: 'is required (the GitHub user or organisation the OIDC roles trust)' })
      .regex(githubName, 'must be a GitHub user or organisation name'),
    githubRepo: z
      .string({ error: 'is required (the GitHub repository the OIDC roles trust)' })
      .regex(githubName, 'must be a GitHub repository name'),
    githubEnvironment: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,255}$/, 'must be a GitHub environment name (no wildcards)')
      .optional(),
    githubOidcSubject: z
      .enum(GITHUB_OIDC_SUBJECTS, {
        error:
          'must be "default" (any workflow on main may assume every role) or "workflow" (each role trusts only its workflow files; turn on the repository\'s sub customisation first)',
      })
      .default('default'),
    githubOidcProviderArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/,
        'must be the ARN of the existing token.actions.githubusercontent.com OIDC provider',
      )
      .optional(),
    region: z
      .string()
      .regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'must be an AWS region like us-east-1')
      .optional(),
    cdkQualifier: z
      .string()
      .regex(/^[a-z0-9]{1,10}$/, 'must be the CDK bootstrap qualifier')
      .default('hnb659fs'),
    imageTag: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be a valid image tag')
      .refine((t) => t !== 'latest', 'must not be `latest` (tags are immutable: use the commit SHA)')
      .optional(),
    initialModelUri: z
      .string()
      .refine(
        (u) => u === NO_MODEL_URI || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+/.test(u),
        `must be "${NO_MODEL_URI}" or an s3://bucket/key URI`,
      )
      .default(NO_MODEL_URI),
    initialModelRecord: z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({
            code: 'custom',
            message: 'must be JSON, as scripts/live-model-uri.ts --record prints',
          });
          return z.NEVER;
        }
      })
      .pipe(ModelRecordSchema)
      .optional(),
    dataBucketName: optionalBucket,
    modelsBucketName: optionalBucket,
    docsBucketName: optionalBucket,
    accessLogsBucketName: optionalBucket,
    modelVersionRetentionDays: int(1, 3650).default(30),
    natStrategy: z.enum(NAT_STRATEGIES).default('single-nat'),
    notebook: bool.default(true),
    notebookInstanceType: z
      .string()
      .regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/, 'must be a SageMaker instance type like ml.t3.medium')
      .default('ml.t3.medium'),
    serviceCpu: int(256, 4096).default(1024),
    serviceMemory: int(512, 30720).default(2048),
    /** Ignored, with a warning: autoscaling owns the task count (kept so old configs still parse). */
    desiredCount: int(1, 100).optional(),
    minCount: int(1, 100).default(2),
    maxCount: int(1, 100).default(4),
    internetFacing: bool.default(false),
    certificateArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/,
        'must be an ACM certificate ARN',
      )
      .optional(),
    allowedCidrs: stringList.default([]),
    logRetentionDays: z
      .preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v), z.number())
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(30),
    imagesToKeep: int(1, 1000).default(20),
    /**
     * Reserve one concurrent execution for the rollout Lambda, so uploads roll out one at a time.
     * false is an escape hatch for accounts whose Lambda concurrency limit is 10 (see README).
     * Unset means true, and synth notes once what that needs from the account; setting it
     * (to true) is how a team says it has read that.
     */
    serialRollouts: bool.optional(),
    alarmEmails: stringList.default([]),
  })
  .superRefine((c, ctx) => {
    // Another stage's stack name suffixes the IAM role names, which IAM caps at 64 characters.
    const maxStackName = 64 - 1 - Math.max(...Object.values(GITHUB_OIDC_ROLES).map((r) => r.length));
    if (c.stackName !== DEFAULT_STACK_NAME && c.stackName.length > maxStackName) {
      ctx.addIssue({
        code: 'custom',
        path: ['stackName'],
        params: { value: c.stackName },
        message: `must be at most ${maxStackName} characters (it suffixes the stage's IAM role names)`,
      });
    }
    const memories = FARGATE_MEMORY[c.serviceCpu];
    if (!memories) {
      ctx.addIssue({
        code: 'custom',
        path: ['serviceCpu'],
        params: { value: c.serviceCpu },
        message: `must be one of ${Object.keys(FARGATE_MEMORY).join(', ')} (Fargate CPU units)`,
      });
    } else if (!memories.includes(c.serviceMemory)) {
      ctx.addIssue({
        code: 'custom',
        path: ['serviceMemory'],
        params: { value: c.serviceMemory },
        message: `is not a Fargate size for serviceCpu ${c.serviceCpu}: use ${memories[0]}..${memories.at(-1)} MiB`,
      });
    }
    if (c.initialModelUri === NO_MODEL_URI && Object.keys(c.initialModelRecord ?? {}).length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['initialModelRecord'],
        message: `orders a model, but initialModelUri is "${NO_MODEL_URI}"`,
      });
    }
    if (c.minCount > c.maxCount) {
      ctx.addIssue({
        code: 'custom',
        path: ['minCount'],
        params: { value: c.minCount },
        message: `must be <= maxCount (${c.maxCount})`,
      });
    }
    if (c.desiredCount !== undefined && (c.desiredCount < c.minCount || c.desiredCount > c.maxCount)) {
      ctx.addIssue({
        code: 'custom',
        path: ['desiredCount'],
        params: { value: c.desiredCount },
        message: `must be between minCount (${c.minCount}) and maxCount (${c.maxCount})`,
      });
    }
    if (c.internetFacing) {
      if (!c.certificateArn) {
        ctx.addIssue({
          code: 'custom',
          path: ['certificateArn'],
          params: { value: c.certificateArn },
          message: 'is required when internetFacing is true (the public listener serves HTTPS only)',
        });
      }
      if (c.allowedCidrs.length === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['allowedCidrs'],
          params: { value: c.allowedCidrs },
          message: 'must list at least one CIDR when internetFacing is true (no open-to-the-world default)',
        });
      }
    }
    c.alarmEmails.forEach((email, i) => {
      if (!z.email().safeParse(email).success) {
        ctx.addIssue({
          code: 'custom',
          path: ['alarmEmails', i],
          params: { value: email },
          message: 'must be an email address',
        });
      }
    });
    c.allowedCidrs.forEach((range, i) => {
      if (!cidr.test(range)) {
        ctx.addIssue({
          code: 'custom',
          path: ['allowedCidrs', i],
          params: { value: range },
          message: 'must be an IPv4 CIDR like 203.0.113.0/24',
        });
      } else if (range.endsWith('/0')) {
        ctx.addIssue({
          code: 'custom',
          path: ['allowedCidrs', i],
          params: { value: range },
          message: 'must not be /0 (open to the world)',
        });
      }
    });
  });

/** The validated configuration of the CDK app (every default applied). */
export type SlipwayConfig = Omit<z.output<typeof schema>, 'registryStackName'> & {
  readonly registryStackName: string;
};

/** Example values `npm run synth` fills in (only where unset) via `-c exampleValues=true`, so a clean clone synthesizes. */
export const EXAMPLE_VALUES = {
  githubOwner: 'example-org',
  githubRepo: 'slipway',
  imageTag: 'example',
} as const;

/** Every context key the config reads (others in cdk.json are CDK feature flags and ignored). */
export const CONFIG_KEYS = [...Object.keys(schema.shape), 'exampleValues'] as readonly string[];

function describe(value: unknown): string {
  if (value === undefined) return 'unset';
  return JSON.stringify(value);
}

/**
 * Validate raw context values into a `SlipwayConfig`.
 *
 * @throws InfraConfigError naming each bad setting and the value it got.
 * @example parseConfig({ githubOwner: 'acme', githubRepo: 'slipway', imageTag: 'abc123' })
 */
export function parseConfig(raw: Readonly<Record<string, unknown>>): SlipwayConfig {
  const input: Record<string, unknown> = { ...raw };
  if (input.exampleValues === true || input.exampleValues === 'true') {
    for (const [key, value] of Object.entries(EXAMPLE_VALUES)) input[key] ??= value;
  }
  delete input.exampleValues;
  const result = schema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.');
      const params: unknown = issue.code === 'custom' ? issue.params : undefined;
      const got =
        params && typeof params === 'object' && 'value' in params ? params.value : getPath(input, issue.path);
      return `${key} = ${describe(got)}: ${issue.message}`;
    });
    throw new InfraConfigError(
      `invalid Slipway CDK config (set it in cdk.json "context" or with -c key=value):\n  ${lines.join('\n  ')}`,
    );
  }
  return {
    ...result.data,
    registryStackName: result.data.registryStackName ?? `${result.data.stackName}Registry`,
  };
}

function getPath(obj: Readonly<Record<string, unknown>>, path: readonly PropertyKey[]): unknown {
  let cur: unknown = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** Read the config keys from a construct tree's context (CDK context: cdk.json or `-c`). */
export function readContext(tryGetContext: (key: string) => unknown): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const value = tryGetContext(key);
    if (value !== undefined) raw[key] = value;
  }
  return raw;
}
