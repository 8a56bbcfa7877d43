import { describe, expect, it } from 'vitest';
import { ArtifactError, createManifest, parseManifest } from '../../src/model/index.ts';
import type { Manifest } from '../../src/model/index.ts';

const valid: Manifest = {
  name: 'mnist',
  version: '7',
  createdAt: '2026-03-04T05:06:07.000Z',
  inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 28, 28, 1] }],
  outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 10] }],
  labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  metrics: { test_accuracy: 0.98 },
  sha256: 'a'.repeat(64),
  framework: 'tfjs 4.22',
};

function rejection(json: unknown): ArtifactError {
  try {
    parseManifest(json);
  } catch (err) {
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as ArtifactError).code).toBe('ARTIFACT_BAD_MANIFEST');
    return err as ArtifactError;
  }
  throw new Error('expected parseManifest to throw');
}

describe('parseManifest', () => {
  it('accepts a complete manifest and returns it unchanged', () => {
    expect(parseManifest(valid)).toEqual(valid);
  });

  it('accepts a manifest without the optional fields and a timestamp with an offset', () => {
    const { labels: _l, metrics: _m, framework: _f, ...minimal } = valid;
    expect(parseManifest({ ...minimal, createdAt: '2026-03-04T05:06:07+02:00' })).toEqual({
      ...minimal,
      createdAt: '2026-03-04T05:06:07+02:00',
    });
  });

  it('drops unknown keys so newer writers stay readable', () => {
    expect(parseManifest({ ...valid, futureField: 1 })).not.toHaveProperty('futureField');
  });

  it('names the field path, the allowed values and the bad value for a wrong datatype', () => {
    const err = rejection({ ...valid, inputs: [{ name: 'image', datatype: 'FLOAT', shape: [1] }] });
    expect(err.message).toMatch(
      /^manifest\.inputs\[0\]\.datatype: expected one of BOOL, UINT8, .*, BYTES, got "FLOAT"$/,
    );
  });

  it('reports a missing required field', () => {
    const { sha256: _s, ...rest } = valid;
    expect(rejection(rest).message).toMatch(/manifest\.sha256: expected string, got nothing/);
  });

  it('rejects a checksum that is not 64 lower-case hex digits', () => {
    expect(rejection({ ...valid, sha256: 'ABC' }).message).toMatch(/manifest\.sha256: .*hex.*got "ABC"/);
  });

  it('rejects fractional and below -1 dimensions', () => {
    const err = rejection({ ...valid, outputs: [{ name: 'scores', datatype: 'FP32', shape: [1.5, -2] }] });
    expect(err.message).toMatch(/manifest\.outputs\[0\]\.shape\[0\]/);
    expect(err.message).toMatch(/manifest\.outputs\[0\]\.shape\[1\]/);
  });

  it('rejects a timestamp that is not ISO-8601', () => {
    expect(rejection({ ...valid, createdAt: 'yesterday' }).message).toMatch(
      /manifest\.createdAt: .*"yesterday"/,
    );
  });

  it('rejects a model with no outputs', () => {
    expect(rejection({ ...valid, outputs: [] }).message).toMatch(/manifest\.outputs/);
  });

  it('rejects non-numeric metrics', () => {
    expect(rejection({ ...valid, metrics: { acc: 'high' } }).message).toMatch(/manifest\.metrics\.acc/);
  });

  it('rejects something that is not an object', () => {
    expect(rejection([1, 2]).message).toMatch(/^manifest: expected object/);
  });
});

describe('createManifest', () => {
  it('defaults createdAt to now and validates', () => {
    const before = Date.now();
    const { createdAt: _c, ...input } = valid;
    const manifest = createManifest(input);
    expect(Date.parse(manifest.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(manifest.name).toBe('mnist');
  });

  it('accepts a Date for createdAt', () => {
    const manifest = createManifest({ ...valid, createdAt: new Date('2026-01-01T00:00:00Z') });
    expect(manifest.createdAt).toBe('2026-01-01T00:00:00.000Z');
  });

  it('throws the same typed error as parseManifest', () => {
    expect(() => createManifest({ ...valid, name: '' })).toThrow(ArtifactError);
  });
});
