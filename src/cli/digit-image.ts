import { PNG } from 'pngjs';
import { UsageError } from '../errors.ts';

/** Side of an MNIST digit image. */
export const DIGIT_SIZE = 28;

/**
 * Turns a PNG of a handwritten digit into MNIST's input: 28x28 grayscale in [0, 1], white ink on
 * black, row-major. Any size is box-resampled to 28x28; dark-on-light drawings are inverted;
 * transparent pixels count as background.
 */
export function pngToDigitPixels(data: Uint8Array, what = 'the image'): Float32Array {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(data));
  } catch (err) {
    throw new UsageError(`${what} is not a readable PNG (${(err as Error).message})`, { cause: err });
  }
  const { width, height } = png;
  if (width === 0 || height === 0) throw new UsageError(`${what} has no pixels`);
  // Luminance composited over white, so a transparent background reads as paper.
  const gray = new Float32Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const r = png.data[i * 4]!;
    const g = png.data[i * 4 + 1]!;
    const b = png.data[i * 4 + 2]!;
    const a = png.data[i * 4 + 3]! / 255;
    const lum = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
    gray[i] = lum * a + (1 - a);
  }
  const out = new Float32Array(DIGIT_SIZE * DIGIT_SIZE);
  for (let y = 0; y < DIGIT_SIZE; y++) {
    for (let x = 0; x < DIGIT_SIZE; x++) {
      const x0 = Math.floor((x * width) / DIGIT_SIZE);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * width) / DIGIT_SIZE));
      const y0 = Math.floor((y * height) / DIGIT_SIZE);
      const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * height) / DIGIT_SIZE));
      let sum = 0;
      for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) sum += gray[yy * width + xx]!;
      out[y * DIGIT_SIZE + x] = sum / ((x1 - x0) * (y1 - y0));
    }
  }
  const mean = out.reduce((s, v) => s + v, 0) / out.length;
  // MNIST digits are light ink on a dark background; a drawing on paper is the other way round.
  if (mean > 0.5) for (let i = 0; i < out.length; i++) out[i] = 1 - out[i]!;
  return out;
}

/** Encodes 28x28 pixels in [0, 1] as a grayscale PNG (for samples and tests). */
export function digitPixelsToPng(pixels: ArrayLike<number>, size = DIGIT_SIZE): Buffer {
  const png = new PNG({ width: size, height: size });
  for (let i = 0; i < size * size; i++) {
    const v = Math.round(Math.min(1, Math.max(0, pixels[i] ?? 0)) * 255);
    png.data[i * 4] = v;
    png.data[i * 4 + 1] = v;
    png.data[i * 4 + 2] = v;
    png.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}

/** Rounds pixels for a compact JSON request body. */
export function pixelsToInstance(pixels: ArrayLike<number>): number[] {
  return Array.from(pixels, (v) => Math.round(v * 1000) / 1000);
}
