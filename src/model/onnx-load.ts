import type { InferenceSession } from 'onnxruntime-node';
import { ArtifactError } from './errors.ts';

/**
 * Proves onnxruntime can load a model: creates an InferenceSession and releases it.
 *
 * Throws ArtifactError `ARTIFACT_ONNX_INVALID` carrying onnxruntime's reason.
 */
export async function assertOnnxLoads(onnxPath: string): Promise<void> {
  // Imported on demand: the native binding is large, and callers of src/model that never load a
  // model (the rollout Lambda, the CLI) should not pay for it or have to bundle it.
  const ort = await import('onnxruntime-node');
  let session: InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ArtifactError('ARTIFACT_ONNX_INVALID', `onnxruntime cannot load ${onnxPath}: ${reason}`, {
      cause: err,
    });
  }
  await session.release();
}
