import { describe, expect, it } from 'vitest';
import {
  HyperparameterError,
  hp,
  parseHyperparameters,
  toHyperparameterStrings,
} from '../../src/train/index.ts';

const spec = {
  epochs: hp.int({ default: 5, min: 1 }),
  'learning-rate': hp.float({ default: 0.001, min: 0 }),
  size: hp.choice(['small', 'large'], { default: 'small' }),
  shuffle: hp.bool({ default: true }),
  tag: hp.string({ default: 'none' }),
};

function parseError(raw: Record<string, unknown>): HyperparameterError {
  try {
    parseHyperparameters(spec, raw);
  } catch (err) {
    expect(err).toBeInstanceOf(HyperparameterError);
    return err as HyperparameterError;
  }
  throw new Error('expected a HyperparameterError');
}

describe('parseHyperparameters', () => {
  it('applies defaults when no hyperparameters are given', () => {
    expect(parseHyperparameters(spec, {})).toEqual({
      epochs: 5,
      'learning-rate': 0.001,
      size: 'small',
      shuffle: true,
      tag: 'none',
    });
  });

  it('parses the string values SageMaker delivers into typed values', () => {
    const values = parseHyperparameters(spec, {
      epochs: '12',
      'learning-rate': '3e-4',
      size: 'large',
      shuffle: 'False',
      tag: 'run 7',
    });
    expect(values).toEqual({
      epochs: 12,
      'learning-rate': 0.0003,
      size: 'large',
      shuffle: false,
      tag: 'run 7',
    });
  });

  it('unwraps values the SageMaker Python SDK JSON-quoted once', () => {
    expect(parseHyperparameters(spec, { epochs: '"7"', tag: '"\\"x\\""' })).toMatchObject({
      epochs: 7,
      tag: '"x"',
    });
  });

  it('accepts numbers and booleans from a hand-written local file', () => {
    expect(parseHyperparameters(spec, { epochs: 3, shuffle: false })).toMatchObject({
      epochs: 3,
      shuffle: false,
    });
  });

  it('rejects a non-numeric number naming the key and the value', () => {
    const err = parseError({ epochs: 'five' });
    expect(err.key).toBe('epochs');
    expect(err.message).toContain('"epochs" = "five" is not an integer');
  });

  it('rejects values Number() would silently accept', () => {
    for (const bad of ['', '0x10', 'Infinity', '1.5']) {
      expect(parseError({ epochs: bad }).key).toBe('epochs');
    }
    expect(parseError({ 'learning-rate': 'NaN' }).message).toContain('is not a number');
  });

  it('rejects values outside the declared bounds', () => {
    expect(parseError({ epochs: '0' }).message).toContain('must be >= 1');
    expect(parseError({ 'learning-rate': '-0.1' }).message).toContain('must be >= 0');
  });

  it('rejects a value outside a choice and says which are allowed', () => {
    expect(parseError({ size: 'huge' }).message).toContain('is not one of small, large');
  });

  it('rejects unknown keys and lists the known ones', () => {
    const err = parseError({ epochs: '2', epoch: '3' });
    expect(err.key).toBe('epoch');
    expect(err.message).toBe(
      'unknown hyperparameter "epoch"; known: epochs, learning-rate, size, shuffle, tag',
    );
  });

  it("ignores SageMaker's own reserved keys", () => {
    const values = parseHyperparameters(spec, {
      sagemaker_program: '"train.py"',
      sagemaker_region: '"us-east-1"',
      _tuning_objective_metric: 'validation:accuracy',
      epochs: '4',
    });
    expect(values.epochs).toBe(4);
    expect(Object.keys(values)).not.toContain('sagemaker_program');
  });

  it('requires a key that has no default', () => {
    const err = (() => {
      try {
        parseHyperparameters({ classes: hp.int({ min: 2 }) }, {});
      } catch (e) {
        return e as HyperparameterError;
      }
      throw new Error('expected an error');
    })();
    expect(err.message).toBe('hyperparameter "classes" is required (integer >= 2)');
  });

  it('rejects a value that is neither string, number nor boolean', () => {
    expect(parseError({ epochs: [1] }).message).toContain('must be a string');
  });
});

describe('toHyperparameterStrings', () => {
  it('turns every value into the string SageMaker would deliver', () => {
    expect(toHyperparameterStrings({ epochs: 5, lr: 0.01, shuffle: true, tag: 'a' })).toEqual({
      epochs: '5',
      lr: '0.01',
      shuffle: 'true',
      tag: 'a',
    });
  });
});
