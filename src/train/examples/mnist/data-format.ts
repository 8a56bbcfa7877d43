import { readFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { MnistDataError } from './errors.ts';

/**
 * The digits file format ("SLWDIGIT" v1), one file per split, all integers little-endian:
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 8 | magic `SLWDIGIT` |
 * | 8 | 4 | format version (1) |
 * | 12 | 4 | record count N |
 * | 16 | 4 | image rows (28) |
 * | 20 | 4 | image columns (28) |
 * | 24 | 4 | CRC-32 of the payload |
 * | 28 | 4 | number of classes (10) |
 * | 32 | N * (1 + rows * cols) | records: label byte, then rows*cols pixel bytes (0..255, row-major) |
 *
 * The header makes truncation (size mismatch) and corruption (CRC, label range) detectable
 * before training starts, so a bad upload fails the job with a clear reason.
 */
export const DIGITS_MAGIC = 'SLWDIGIT';
/** Current version of the digits file format. */
export const DIGITS_FORMAT_VERSION = 1;
/** Size in bytes of the digits file header. */
export const DIGITS_HEADER_BYTES = 32;
/** File name of the training split inside a data channel. */
export const TRAIN_FILE = 'mnist-train.digits';
/** File name of the held-out test split inside a data channel. */
export const TEST_FILE = 'mnist-test.digits';
/** Image side length of MNIST digits. */
export const IMAGE_SIZE = 28;
/** Number of classes (digits 0-9). */
export const NUM_CLASSES = 10;

/** Labelled images in memory: `pixels` holds `count * rows * cols` bytes, `labels` one byte per image. */
export interface DigitSet {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  readonly labels: Uint8Array;
  readonly pixels: Uint8Array;
}

/** Serialises a digit set into the SLWDIGIT v1 format. */
export function encodeDigits(set: DigitSet): Uint8Array {
  const pixelsPerImage = set.rows * set.cols;
  const payload = new Uint8Array(set.count * (1 + pixelsPerImage));
  for (let i = 0; i < set.count; i++) {
    const offset = i * (1 + pixelsPerImage);
    payload[offset] = set.labels[i] ?? 0;
    payload.set(set.pixels.subarray(i * pixelsPerImage, (i + 1) * pixelsPerImage), offset + 1);
  }
  const out = new Uint8Array(DIGITS_HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(DIGITS_MAGIC), 0);
  view.setUint32(8, DIGITS_FORMAT_VERSION, true);
  view.setUint32(12, set.count, true);
  view.setUint32(16, set.rows, true);
  view.setUint32(20, set.cols, true);
  view.setUint32(24, crc32(payload), true);
  view.setUint32(28, NUM_CLASSES, true);
  out.set(payload, DIGITS_HEADER_BYTES);
  return out;
}

/** Parses and checks SLWDIGIT v1 bytes; `source` names the file in error messages. */
export function decodeDigits(bytes: Uint8Array, source: string): DigitSet {
  if (bytes.length < DIGITS_HEADER_BYTES) {
    throw new MnistDataError(
      'MNIST_DATA_TRUNCATED',
      `${source}: ${bytes.length} bytes is shorter than the ${DIGITS_HEADER_BYTES}-byte header; the file is truncated or not a digits file.`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== DIGITS_MAGIC) {
    throw new MnistDataError(
      'MNIST_DATA_FORMAT',
      `${source}: not a digits file (magic ${JSON.stringify(magic)}, expected ${DIGITS_MAGIC}); stage the data with prepare-data.`,
    );
  }
  const version = view.getUint32(8, true);
  if (version !== DIGITS_FORMAT_VERSION) {
    throw new MnistDataError(
      'MNIST_DATA_FORMAT',
      `${source}: digits format version ${version} is not supported (expected ${DIGITS_FORMAT_VERSION}).`,
    );
  }
  const count = view.getUint32(12, true);
  const rows = view.getUint32(16, true);
  const cols = view.getUint32(20, true);
  const classes = view.getUint32(28, true);
  if (rows !== IMAGE_SIZE || cols !== IMAGE_SIZE || classes !== NUM_CLASSES) {
    throw new MnistDataError(
      'MNIST_DATA_FORMAT',
      `${source}: images are ${rows}x${cols} with ${classes} classes; this trainer expects ${IMAGE_SIZE}x${IMAGE_SIZE} with ${NUM_CLASSES}.`,
    );
  }
  if (count === 0) {
    throw new MnistDataError('MNIST_DATA_TRUNCATED', `${source}: the file holds no images.`);
  }
  const record = 1 + rows * cols;
  const expected = DIGITS_HEADER_BYTES + count * record;
  if (bytes.length !== expected) {
    throw new MnistDataError(
      'MNIST_DATA_TRUNCATED',
      `${source}: the header announces ${count} images (${expected} bytes) but the file has ${bytes.length} bytes; it is truncated or has trailing data.`,
    );
  }
  const payload = bytes.subarray(DIGITS_HEADER_BYTES);
  const stored = view.getUint32(24, true);
  const actual = crc32(payload);
  if (stored !== actual) {
    throw new MnistDataError(
      'MNIST_DATA_CORRUPT',
      `${source}: payload checksum mismatch (CRC-32 ${hex(actual)}, header says ${hex(stored)}); the file is corrupt.`,
    );
  }
  const labels = new Uint8Array(count);
  const pixels = new Uint8Array(count * rows * cols);
  for (let i = 0; i < count; i++) {
    const label = payload[i * record] ?? 0;
    if (label >= NUM_CLASSES) {
      throw new MnistDataError(
        'MNIST_DATA_CORRUPT',
        `${source}: image ${i} has label ${label}, outside 0-9.`,
      );
    }
    labels[i] = label;
    pixels.set(payload.subarray(i * record + 1, (i + 1) * record), i * rows * cols);
  }
  return { count, rows, cols, labels, pixels };
}

/** Reads and checks a digits file; a missing file is a {@link MnistDataError} naming the path. */
export async function readDigitsFile(path: string): Promise<DigitSet> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new MnistDataError(
        'MNIST_DATA_MISSING',
        `${path}: no such file; stage the data with prepare-data.`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
  return decodeDigits(bytes, path);
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
