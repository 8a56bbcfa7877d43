import type * as tf from '@tensorflow/tfjs';
import * as tfjs from '@tensorflow/tfjs';

/** mulberry32: a tiny seeded PRNG so every run builds the same weights and inputs. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform values in [-scale, scale). */
export function uniform(rand: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

/** Replaces every weight of the model by seeded uniform noise (biases included, so they matter). */
export function randomizeWeights(model: tf.LayersModel, seed: number, scale = 0.5): void {
  const rand = seededRandom(seed);
  const weights = model.getWeights().map((w) => tfjs.tensor(uniform(rand, w.size, scale), w.shape));
  model.setWeights(weights);
  weights.forEach((w) => w.dispose());
}
