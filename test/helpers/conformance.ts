import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file lives in test/helpers). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `../shared/conformance/onnx-backend` beside the repository (present in CI's clean clone too). */
export const ONNX_BACKEND_DIR = resolve(REPO_ROOT, '..', 'shared', 'conformance', 'onnx-backend');

/** Absolute path of a model in the ONNX backend test data; throws with a clear message when missing. */
export function conformanceModel(relativePath: string): string {
  const path = join(ONNX_BACKEND_DIR, relativePath);
  if (!existsSync(path)) {
    throw new Error(`ONNX conformance model not found: ${path} (expected ../shared beside the repository)`);
  }
  return path;
}
