import { SlipwayError } from '../errors.ts';

/** Stable codes of {@link ArtifactError}, one per way a model artifact can be rejected. */
export const ARTIFACT_ERROR_CODES = [
  /** An entry path is absolute, contains `..`, a backslash or a NUL, repeats an earlier entry, or names a file like a directory. */
  'ARTIFACT_UNSAFE_ENTRY',
  /** A symbolic or hard link entry. */
  'ARTIFACT_LINK',
  /** A device, FIFO or other non-regular entry type. */
  'ARTIFACT_SPECIAL_FILE',
  /** Total uncompressed bytes (or the manifest) exceed the cap. */
  'ARTIFACT_TOO_LARGE',
  /** More entries than the cap. */
  'ARTIFACT_TOO_MANY_ENTRIES',
  /** Compression ratio above the cap (gzip bomb). */
  'ARTIFACT_RATIO',
  /** The file is not gzip data. */
  'ARTIFACT_NOT_GZIP',
  /** The gzip stream or the tar inside it ends early, or is corrupt. */
  'ARTIFACT_TRUNCATED',
  /** Zero bytes, or a tarball with no entries. */
  'ARTIFACT_EMPTY',
  /** No `model.onnx` at the archive root (or in the model directory being packed). */
  'ARTIFACT_NO_ONNX',
  /** `manifest.json` is not JSON or fails the schema. */
  'ARTIFACT_BAD_MANIFEST',
  /** The SHA-256 of `model.onnx` differs from the manifest's. */
  'ARTIFACT_CHECKSUM',
  /** The manifest's inputs, outputs or labels disagree with the ONNX graph. */
  'ARTIFACT_SIGNATURE_MISMATCH',
  /** `model.onnx` is not a parseable ONNX model, or onnxruntime cannot load it. */
  'ARTIFACT_ONNX_INVALID',
  /** The ONNX model parses but uses input types the inference protocol cannot carry. */
  'ARTIFACT_ONNX_UNSUPPORTED',
  /** Reading the source or writing the extraction directory failed (disk full, permissions, network). */
  'ARTIFACT_IO',
] as const;

/** One of {@link ARTIFACT_ERROR_CODES}. */
export type ArtifactErrorCode = (typeof ARTIFACT_ERROR_CODES)[number];

/** A model artifact (tarball, manifest or ONNX file) was rejected; `code` says why. */
export class ArtifactError extends SlipwayError {
  declare readonly code: ArtifactErrorCode;

  constructor(code: ArtifactErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** True when `err` is an {@link ArtifactError}, optionally with the given code. */
export function isArtifactError(err: unknown, code?: ArtifactErrorCode): err is ArtifactError {
  return err instanceof ArtifactError && (code === undefined || err.code === code);
}
