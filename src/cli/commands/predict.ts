import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { SlipwayError, UsageError } from '../../errors.ts';
import { pixelsToInstance, pngToDigitPixels } from '../digit-image.ts';
import { printJson } from '../options.ts';
import { resolveWhere, whereOptions } from '../targets.ts';
import type { WhereFlags } from '../targets.ts';

interface PredictFlags extends WhereFlags {
  data?: string;
  url?: string;
  json?: boolean;
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

/** Registers `slipway predict`: send JSON or a PNG of a digit to the endpoint. */
export function registerPredict(program: Command): void {
  whereOptions(
    program
      .command('predict')
      .argument(
        '[input]',
        'a PNG of a digit (any size; turned into 28x28 grayscale), a JSON request file, or - for stdin',
      )
      .description(
        'Get a prediction from the service behind the load balancer (POST /invocations).\n' +
          'A PNG becomes {"instances": [<784 pixels in [0,1]>]}; JSON is sent as it is.',
      ),
  )
    .option('--data <json>', 'the JSON request body inline, e.g. \'{"instances": [[...]]}\'')
    .option(
      '--url <url>',
      "endpoint base URL (default: the twin, or the stack's LoadBalancerUrl with --cloud)",
    )
    .option('--json', 'print the raw JSON response')
    .action(async (input: string | undefined, flags: PredictFlags) => {
      const body = await requestBody(input, flags.data);
      const base = flags.url ?? (await endpoint(flags));
      const url = invocationsUrl(base, flags.url !== undefined ? '--url' : 'the endpoint');
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        throw new SlipwayError('PREDICT_UNREACHABLE', `cannot reach ${base}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const text = await res.text();
      if (!res.ok) {
        let message = text;
        try {
          message = (JSON.parse(text) as { error?: string; message?: string }).error ?? message;
        } catch {
          // Not JSON: show the text as it came.
        }
        throw new SlipwayError(
          'PREDICT_FAILED',
          `the endpoint answered ${res.status}: ${message.slice(0, 500)}`,
        );
      }
      let parsed: { predictions?: unknown[] };
      try {
        parsed = JSON.parse(text) as { predictions?: unknown[] };
      } catch (err) {
        const start = text.length > 200 ? `${text.slice(0, 200)}...` : text;
        throw new SlipwayError(
          'PREDICT_BAD_RESPONSE',
          `${url.href} answered ${res.status} with a body that is not JSON (is that the inference service?): ${JSON.stringify(start)}`,
          { cause: err },
        );
      }
      if (flags.json) {
        printJson(parsed);
        return;
      }
      const version = res.headers.get('x-slipway-model-version');
      for (const [i, p] of (parsed.predictions ?? []).entries()) {
        const c = p as { label?: string; scores?: number[] };
        const score = c.scores ? Math.max(...c.scores) : undefined;
        process.stdout.write(
          c.label !== undefined
            ? `instance ${i}: ${c.label}${score !== undefined ? ` (score ${score.toFixed(3)})` : ''}\n`
            : `instance ${i}: ${JSON.stringify(p)}\n`,
        );
      }
      if (version) process.stdout.write(`model version ${version}\n`);
    });
}

/**
 * POST /invocations under the endpoint's path: `http://h/prefix/` (or `http://h/prefix`) gives
 * `http://h/prefix/invocations`, for a service behind a path-routing proxy.
 */
function invocationsUrl(base: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch (err) {
    throw new UsageError(`${what} "${base}" is not a URL; expected e.g. http://127.0.0.1:8080`, {
      cause: err,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${what} "${base}" is not an http:// or https:// URL`);
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return new URL('invocations', url);
}

async function requestBody(input: string | undefined, data: string | undefined): Promise<string> {
  if (data !== undefined && input !== undefined)
    throw new UsageError('pass either an input file or --data, not both');
  let bytes: Buffer;
  let what: string;
  if (data !== undefined) {
    bytes = Buffer.from(data);
    what = '--data';
  } else if (input === undefined) {
    throw new UsageError(
      'nothing to predict: pass a PNG of a digit, a JSON file, - for stdin, or --data <json>',
    );
  } else if (input === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    bytes = Buffer.concat(chunks);
    what = 'stdin';
  } else {
    bytes = await readFile(input).catch((err: unknown) => {
      throw new UsageError(`cannot read ${input}: ${(err as Error).message}`, { cause: err });
    });
    what = input;
  }
  if (bytes.subarray(0, 4).equals(PNG_MAGIC)) {
    return JSON.stringify({ instances: [pixelsToInstance(pngToDigitPixels(bytes, what))] });
  }
  const text = bytes.toString('utf8');
  try {
    JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is neither a PNG nor valid JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
  return text;
}

async function endpoint(flags: PredictFlags): Promise<string> {
  const where = await resolveWhere(flags);
  if (where.kind === 'local') return where.client.runtime.url;
  if (!where.cloud.loadBalancerUrl) {
    throw new UsageError(`stack ${where.cloud.stackName} has no LoadBalancerUrl output; pass --url`);
  }
  return where.cloud.loadBalancerUrl;
}
