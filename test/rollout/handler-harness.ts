/**
 * What each test of the rollout Lambda's handler runs in: the SLIPWAY_* environment of a configured
 * function (cluster, service and models bucket of ./fixtures.ts) and its output captured, read back
 * as the JSON log lines it wrote. Call it once, at the top of a file or describe block.
 */
import { afterEach, beforeEach, vi, type MockInstance } from 'vitest';
import { ENV } from '../../src/names.ts';
import { CLUSTER, MODELS_BUCKET, SERVICE } from './fixtures.ts';

export function captureHandlerRuns(): { readonly logLines: () => Record<string, unknown>[] } {
  let stdout: MockInstance<typeof process.stdout.write>;
  let stderr: MockInstance<typeof process.stderr.write>;
  beforeEach(() => {
    vi.stubEnv('AWS_REGION', 'eu-west-1');
    vi.stubEnv(ENV.cluster, CLUSTER);
    vi.stubEnv(ENV.service, SERVICE);
    vi.stubEnv(ENV.modelsBucket, MODELS_BUCKET);
    vi.stubEnv(ENV.container, '');
    stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => {
    stdout.mockRestore();
    stderr.mockRestore();
    vi.unstubAllEnvs();
  });
  return {
    /** The JSON log lines the handler wrote (Powertools writes errors to stderr, the rest to stdout). */
    logLines: () =>
      [...stdout.mock.calls, ...stderr.mock.calls]
        .flatMap((call) => String(call[0]).split('\n'))
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
