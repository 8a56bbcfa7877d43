import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeDigits,
  DIGITS_HEADER_BYTES,
  encodeDigits,
  readDigitsFile,
} from '../../../../src/train/examples/mnist/data-format.ts';
import type { DigitSet } from '../../../../src/train/examples/mnist/data-format.ts';
import { MnistDataError } from '../../../../src/train/examples/mnist/errors.ts';
import { prepareMnistData } from '../../../../src/train/examples/mnist/prepare-data.ts';

function tinySet(count: number): DigitSet {
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const pixels = Uint8Array.from({ length: count * 784 }, (_, i) => (i * 7) % 256);
  return { count, rows: 28, cols: 28, labels, pixels };
}

function decodeError(bytes: Uint8Array): MnistDataError {
  try {
    decodeDigits(bytes, 'digits.bin');
  } catch (err) {
    expect(err).toBeInstanceOf(MnistDataError);
    return err as MnistDataError;
  }
  throw new Error('expected decodeDigits to throw');
}

describe('digits file format', () => {
  it('round-trips labels and pixels', () => {
    const set = tinySet(5);
    const back = decodeDigits(encodeDigits(set), 'x');
    expect(back.count).toBe(5);
    expect(Array.from(back.labels)).toEqual(Array.from(set.labels));
    expect(Buffer.from(back.pixels).equals(Buffer.from(set.pixels))).toBe(true);
  });

  it('detects a truncated file and says how many bytes were expected', () => {
    const bytes = encodeDigits(tinySet(3));
    const error = decodeError(bytes.subarray(0, bytes.length - 100));
    expect(error.code).toBe('MNIST_DATA_TRUNCATED');
    expect(error.message).toMatch(
      /digits\.bin: the header announces 3 images \(2387 bytes\) but the file has 2287/,
    );
    expect(decodeError(bytes.subarray(0, 10)).code).toBe('MNIST_DATA_TRUNCATED');
  });

  it('detects a flipped payload byte through the checksum', () => {
    const bytes = encodeDigits(tinySet(3));
    bytes[DIGITS_HEADER_BYTES + 500]! ^= 0x01;
    const error = decodeError(bytes);
    expect(error.code).toBe('MNIST_DATA_CORRUPT');
    expect(error.message).toMatch(/checksum mismatch/);
  });

  it('rejects files that are not digits files, naming the magic it found', () => {
    const bytes = encodeDigits(tinySet(1));
    bytes.set(new TextEncoder().encode('PK\u0003\u0004zip!'), 0);
    const error = decodeError(bytes);
    expect(error.code).toBe('MNIST_DATA_FORMAT');
    expect(error.message).toMatch(/not a digits file/);
  });

  it('rejects a label outside 0-9 even when the checksum is consistent', () => {
    const set = tinySet(2);
    const error = decodeError(encodeDigits({ ...set, labels: Uint8Array.from([3, 12]) }));
    expect(error.code).toBe('MNIST_DATA_CORRUPT');
    expect(error.message).toMatch(/image 1 has label 12/);
  });

  it('names a missing file', async () => {
    await expect(readDigitsFile('/nonexistent/mnist-train.digits')).rejects.toMatchObject({
      code: 'MNIST_DATA_MISSING',
    });
  });
});

describe('prepareMnistData', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slipway-mnist-data-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes all 10,000 digits as disjoint 8,000/2,000 train and test files with every class present', async () => {
    const result = await prepareMnistData(dir);
    const train = await readDigitsFile(result.trainFile);
    const test = await readDigitsFile(result.testFile);
    expect([train.count, test.count]).toEqual([8000, 2000]);

    const key = (set: DigitSet, i: number): string =>
      Buffer.from(set.pixels.subarray(i * 784, (i + 1) * 784)).toString('base64');
    const trainImages = new Set(Array.from({ length: train.count }, (_, i) => key(train, i)));
    const shared = Array.from({ length: test.count }, (_, i) => key(test, i)).filter((k) =>
      trainImages.has(k),
    );
    expect(shared).toEqual([]);
    expect(new Set(test.labels).size).toBe(10);
    expect(new Set(train.labels).size).toBe(10);
  });

  it('produces the same files for the same seed and options', async () => {
    const a = await prepareMnistData(path.join(dir, 'a'), { trainCount: 50, testCount: 20, seed: 7 });
    const b = await prepareMnistData(path.join(dir, 'b'), { trainCount: 50, testCount: 20, seed: 7 });
    expect((await readFile(a.trainFile)).equals(await readFile(b.trainFile))).toBe(true);
    expect((await readFile(a.testFile)).equals(await readFile(b.testFile))).toBe(true);
  });

  it('refuses to ask for more digits than the package holds', async () => {
    await expect(prepareMnistData(dir, { trainCount: 9000, testCount: 2000 })).rejects.toMatchObject({
      code: 'MNIST_DATA_OPTION',
      message: expect.stringMatching(/holds only 10000 digits/) as unknown,
    });
  });
});
