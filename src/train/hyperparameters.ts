import { HyperparameterError } from './errors.ts';

/** How one hyperparameter is parsed from its string form. */
export interface HyperparameterSpec<T> {
  /** Short type description used in error messages, e.g. `integer >= 1`. */
  readonly description: string;
  /** Value used when the key is absent; absent default means the key is required. */
  readonly default?: T;
  /** Parses the (already unquoted) string; throws a plain Error with a reason on bad input. */
  parse(text: string): T;
}

/** A record of hyperparameter specs, keyed by the hyperparameter name. */
export type HyperparameterSpecs = Readonly<Record<string, HyperparameterSpec<unknown>>>;

/** The typed values {@link parseHyperparameters} returns for a spec record. */
export type HyperparameterValues<S extends HyperparameterSpecs> = {
  -readonly [K in keyof S]: S[K] extends HyperparameterSpec<infer T> ? T : never;
};

interface NumberOptions {
  readonly default?: number;
  readonly min?: number;
  readonly max?: number;
}

function bounds(kind: string, options: NumberOptions): string {
  const parts = [kind];
  if (options.min !== undefined) parts.push(`>= ${options.min}`);
  if (options.max !== undefined) parts.push(`<= ${options.max}`);
  return parts.join(' ');
}

function checkBounds(value: number, options: NumberOptions): number {
  if (options.min !== undefined && value < options.min) throw new Error(`must be >= ${options.min}`);
  if (options.max !== undefined && value > options.max) throw new Error(`must be <= ${options.max}`);
  return value;
}

const INT = /^[+-]?\d+$/;
// Decimal or scientific notation only: Number() would also accept '', '0x10', 'Infinity'.
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Builders of {@link HyperparameterSpec}s. */
export const hp = {
  /** A safe integer, optionally bounded. */
  int(options: NumberOptions = {}): HyperparameterSpec<number> {
    return {
      description: bounds('integer', options),
      default: options.default,
      parse(text) {
        if (!INT.test(text)) throw new Error('is not an integer');
        const value = Number(text);
        if (!Number.isSafeInteger(value)) throw new Error('is out of the safe integer range');
        return checkBounds(value, options);
      },
    };
  },
  /** A finite decimal number, optionally bounded. */
  float(options: NumberOptions = {}): HyperparameterSpec<number> {
    return {
      description: bounds('number', options),
      default: options.default,
      parse(text) {
        if (!FLOAT.test(text)) throw new Error('is not a number');
        const value = Number(text);
        if (!Number.isFinite(value)) throw new Error('is not finite');
        return checkBounds(value, options);
      },
    };
  },
  /** Any string. */
  string(options: { readonly default?: string } = {}): HyperparameterSpec<string> {
    return { description: 'string', default: options.default, parse: (text) => text };
  },
  /** `true`/`false` (also `1`/`0`, `yes`/`no`, any case). */
  bool(options: { readonly default?: boolean } = {}): HyperparameterSpec<boolean> {
    return {
      description: 'boolean (true or false)',
      default: options.default,
      parse(text) {
        const lower = text.toLowerCase();
        if (['true', '1', 'yes'].includes(lower)) return true;
        if (['false', '0', 'no'].includes(lower)) return false;
        throw new Error('is not a boolean (use true or false)');
      },
    };
  },
  /** One of a fixed set of strings. */
  choice<const C extends readonly string[]>(
    choices: C,
    options: { readonly default?: C[number] } = {},
  ): HyperparameterSpec<C[number]> {
    return {
      description: `one of ${choices.join(', ')}`,
      default: options.default,
      parse(text) {
        if (!choices.includes(text)) throw new Error(`is not one of ${choices.join(', ')}`);
        return text;
      },
    };
  },
} as const;

/**
 * True for keys SageMaker (or its SDKs and tuner) adds on its own: `sagemaker_*` (framework
 * settings such as `sagemaker_program`) and keys starting with `_` (`_tuning_objective_metric`).
 * They are ignored rather than rejected, so a job launched by the SageMaker SDK or a tuner still runs.
 */
export function isReservedHyperparameter(key: string): boolean {
  return key.startsWith('sagemaker_') || key.startsWith('_');
}

/**
 * Turns one raw value into the string the spec parses. SageMaker passes every value as a string;
 * the SageMaker Python SDK's framework estimators additionally JSON-encode each value, so a string
 * that is itself a JSON string literal (`"\"5\""`) is unwrapped once. Numbers and booleans (as in a
 * hand-written local hyperparameters.json) are accepted as their string form.
 */
function rawText(key: string, raw: unknown): string {
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  if (typeof raw !== 'string') {
    throw new HyperparameterError(
      key,
      `hyperparameter "${key}" must be a string, got ${JSON.stringify(raw)}`,
    );
  }
  const trimmed = raw.trim();
  if (trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')) {
    try {
      const inner: unknown = JSON.parse(trimmed);
      if (typeof inner === 'string') return inner.trim();
    } catch {
      // Not a JSON literal after all: keep the text as it is.
    }
  }
  return trimmed;
}

/**
 * Parses raw hyperparameters (as read from hyperparameters.json) against a spec. Unknown keys are
 * always rejected, listing the known ones; SageMaker's reserved keys are ignored (see
 * {@link isReservedHyperparameter}); absent keys take their default or, without one, are an error.
 *
 * @example
 * const spec = { epochs: hp.int({ default: 5, min: 1 }), 'learning-rate': hp.float({ default: 0.001, min: 0 }) };
 * const { epochs } = parseHyperparameters(spec, ctx.hyperparameters);
 */
export function parseHyperparameters<S extends HyperparameterSpecs>(
  spec: S,
  raw: Readonly<Record<string, unknown>>,
): HyperparameterValues<S> {
  const known = Object.keys(spec);
  const unknown = Object.keys(raw).filter(
    (key) => !Object.hasOwn(spec, key) && !isReservedHyperparameter(key),
  );
  if (unknown.length > 0) {
    const first = unknown[0] ?? '';
    throw new HyperparameterError(
      first,
      `unknown hyperparameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; ` +
        `known: ${known.length > 0 ? known.join(', ') : '(none)'}`,
    );
  }
  const values: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(spec)) {
    if (!Object.hasOwn(raw, key)) {
      if (field.default === undefined) {
        throw new HyperparameterError(key, `hyperparameter "${key}" is required (${field.description})`);
      }
      values[key] = field.default;
      continue;
    }
    const text = rawText(key, raw[key]);
    try {
      values[key] = field.parse(text);
    } catch (err) {
      throw new HyperparameterError(
        key,
        `hyperparameter "${key}" = ${JSON.stringify(text)} ${(err as Error).message} (expected ${field.description})`,
      );
    }
  }
  return values as HyperparameterValues<S>;
}

/**
 * Serialises hyperparameters the way SageMaker delivers them: every value a plain string.
 *
 * @example toHyperparameterStrings({ epochs: 5 }) // { epochs: '5' }
 */
export function toHyperparameterStrings(
  values: Readonly<Record<string, string | number | boolean>>,
): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, String(value)]));
}
