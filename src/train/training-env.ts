import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { TrainingError } from './errors.ts';
import { isPipeMode, unsupportedInputMode } from './input-mode.ts';
import { jobPaths } from './paths.ts';
import type { JobPaths } from './paths.ts';

const channelConfigSchema = z
  .object({
    ContentType: z.string().optional(),
    TrainingInputMode: z.string().optional(),
    S3DistributionType: z.string().optional(),
    RecordWrapperType: z.string().optional(),
  })
  .loose();

const inputDataConfigSchema = z.record(z.string(), channelConfigSchema);

const resourceConfigSchema = z
  .object({
    current_host: z.string().min(1),
    hosts: z.array(z.string().min(1)).min(1),
    current_instance_type: z.string().optional(),
    network_interface_name: z.string().optional(),
  })
  .loose();

/** One channel's entry in inputdataconfig.json. */
export type ChannelConfig = z.infer<typeof channelConfigSchema>;

/** resourceconfig.json: which host this is among the job's hosts. */
export type ResourceConfig = z.infer<typeof resourceConfigSchema>;

/** Everything a training entrypoint learns from the job layout. */
export interface TrainingEnv {
  readonly paths: JobPaths;
  /** hyperparameters.json as read (values are strings under SageMaker). */
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  /** inputdataconfig.json, channel name -> config. */
  readonly inputDataConfig: Readonly<Record<string, ChannelConfig>>;
  /** resourceconfig.json, or a single host `algo-1` when the file is absent (local runs). */
  readonly resourceConfig: ResourceConfig;
  /** Channel name -> directory holding its files; every entry exists and is non-empty. */
  readonly channels: Readonly<Record<string, string>>;
}

/** The resource config of a one-host job, used when resourceconfig.json is absent. */
export const SINGLE_HOST: ResourceConfig = { current_host: 'algo-1', hosts: ['algo-1'] };

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TrainingError('TRAINING_BAD_CONFIG', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new TrainingError('TRAINING_BAD_CONFIG', `${file} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function parseConfig<T>(file: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new TrainingError('TRAINING_BAD_CONFIG', `${file} is malformed${where}: ${issue?.message ?? ''}`);
  }
  return result.data;
}

/** True when `dir` holds at least one regular file at any depth (stops at the first one). */
async function hasAnyFile(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    if (entry.isFile()) return true;
  }
  for (const entry of entries) {
    if (entry.isDirectory() && (await hasAnyFile(join(dir, entry.name)))) return true;
  }
  return false;
}

async function checkChannel(paths: JobPaths, name: string): Promise<string> {
  const dir = paths.channel(name);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new TrainingError(
      'TRAINING_MISSING_CHANNEL',
      `channel "${name}" is configured but ${dir} does not exist (was its data copied in?)`,
    );
  }
  if (!(await hasAnyFile(dir))) {
    throw new TrainingError(
      'TRAINING_EMPTY_CHANNEL',
      `channel "${name}" is empty: no files under ${dir} (check the channel's S3 prefix or folder)`,
    );
  }
  return dir;
}

/**
 * Reads the job's config files and checks its channels. Without inputdataconfig.json (a hand-made
 * local layout) every directory under input/data is a channel. A configured channel whose directory
 * is missing or holds no files is an error, so a bad data prefix fails before training starts.
 *
 * @example const env = await readTrainingEnv(resolveJobRoot()); env.channels.train
 */
export async function readTrainingEnv(root: string): Promise<TrainingEnv> {
  const paths = jobPaths(root);
  const rawHp = await readJson(paths.hyperparameters);
  const hyperparameters =
    rawHp === undefined ? {} : parseConfig(paths.hyperparameters, z.record(z.string(), z.unknown()), rawHp);

  const rawInput = await readJson(paths.inputDataConfig);
  let inputDataConfig: Record<string, ChannelConfig>;
  if (rawInput === undefined) {
    const dirs = await readdir(paths.dataDir, { withFileTypes: true }).catch(() => []);
    inputDataConfig = Object.fromEntries(dirs.filter((d) => d.isDirectory()).map((d) => [d.name, {}]));
  } else {
    inputDataConfig = parseConfig(paths.inputDataConfig, inputDataConfigSchema, rawInput);
  }

  const rawResource = await readJson(paths.resourceConfig);
  const resourceConfig =
    rawResource === undefined
      ? SINGLE_HOST
      : parseConfig(paths.resourceConfig, resourceConfigSchema, rawResource);

  const channels: Record<string, string> = {};
  for (const name of Object.keys(inputDataConfig).sort()) {
    // A job launched elsewhere (console, SDK) in Pipe mode has no channel directory: say why.
    const mode = inputDataConfig[name]?.TrainingInputMode;
    if (isPipeMode(mode)) {
      throw new TrainingError('TRAINING_BAD_CONFIG', unsupportedInputMode(mode, `channel "${name}"`));
    }
    channels[name] = await checkChannel(paths, name);
  }
  return { paths, hyperparameters, inputDataConfig, resourceConfig, channels };
}
