import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { digitPixelsToPng, pngToDigitPixels } from '../../src/cli/digit-image.ts';

describe('pngToDigitPixels', () => {
  it('round-trips a 28x28 light-on-dark digit unchanged (within 8-bit rounding)', () => {
    const pixels = Array.from({ length: 784 }, (_, i) => (i % 28 > 10 && i % 28 < 16 ? 0.9 : 0));
    const back = pngToDigitPixels(digitPixelsToPng(pixels));
    expect(back).toHaveLength(784);
    back.forEach((v, i) => expect(v).toBeCloseTo(pixels[i]!, 2));
  });

  it('inverts a dark-on-light drawing and downsamples any size to 28x28', () => {
    const png = new PNG({ width: 56, height: 56 });
    for (let i = 0; i < 56 * 56; i++) {
      const ink = i % 56 < 4; // a dark stroke down the left edge on white paper
      png.data.set(ink ? [0, 0, 0, 255] : [255, 255, 255, 255], i * 4);
    }
    const out = pngToDigitPixels(PNG.sync.write(png));
    expect(out).toHaveLength(784);
    expect(out[0]).toBeCloseTo(1, 5);
    expect(out[1]).toBeCloseTo(1, 5);
    expect(out[27]).toBeCloseTo(0, 5);
  });

  it('rejects bytes that are not a PNG with a UsageError naming the input', () => {
    expect(() => pngToDigitPixels(Buffer.from('nope'), 'digit.png')).toThrow(UsageError);
    expect(() => pngToDigitPixels(Buffer.from('nope'), 'digit.png')).toThrow(
      /digit\.png is not a readable PNG/,
    );
  });
});
