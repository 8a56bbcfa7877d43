import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

/**
 * Switches TensorFlow.js to the wasm backend, loading the .wasm binaries from the installed package.
 *
 * The package's default is to fetch the binaries by URL, which in Node must be a file path; tfjs-node
 * is not an option (its install downloads a native binary). Idempotent.
 */
export async function useWasmBackend(): Promise<void> {
  if (tf.getBackend() === 'wasm') return;
  const require = createRequire(import.meta.url);
  const wasmFile = require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm');
  setWasmPaths(path.dirname(wasmFile) + path.sep);
  if (!(await tf.setBackend('wasm'))) {
    throw new Error('TensorFlow.js could not initialise its wasm backend');
  }
  await tf.ready();
}
