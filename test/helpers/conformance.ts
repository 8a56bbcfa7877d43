import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file lives in test/helpers). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Reference material vendored into the repository (conformance corpus, OpenAPI document). */
export const SHARED_FIXTURES_DIR = resolve(REPO_ROOT, 'test', 'fixtures', 'shared');

/** The ONNX backend test data (see test/fixtures/shared/README.md). */
export const ONNX_BACKEND_DIR = resolve(SHARED_FIXTURES_DIR, 'conformance', 'onnx-backend');

/** Absolute path of a model in the ONNX backend test data; throws with a clear message when missing. */
export function conformanceModel(relativePath: string): string {
  const path = join(ONNX_BACKEND_DIR, relativePath);
  if (!existsSync(path)) {
    throw new Error(`ONNX conformance model not found: ${path} (see test/fixtures/shared/README.md)`);
  }
  return path;
}
