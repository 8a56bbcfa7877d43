import { SlipwayError } from '../errors.ts';

/** Stable codes of {@link OnnxExportError}. */
export const ONNX_EXPORT_ERROR_CODES = [
  /** A layer class the exporter has no ONNX translation for. */
  'ONNX_UNSUPPORTED_LAYER',
  /** A layer configuration (activation, data format, padding...) the exporter cannot translate. */
  'ONNX_UNSUPPORTED_CONFIG',
  /** The model's topology is outside what the exporter handles (several inputs or outputs, merges). */
  'ONNX_UNSUPPORTED_TOPOLOGY',
  /** An export option is invalid (empty name, opset out of range). */
  'ONNX_BAD_OPTION',
  /** Bytes given to the signature reader are not an ONNX ModelProto with a graph. */
  'ONNX_BAD_MODEL',
] as const;

/** One of {@link ONNX_EXPORT_ERROR_CODES}. */
export type OnnxExportErrorCode = (typeof ONNX_EXPORT_ERROR_CODES)[number];

/** A TensorFlow.js model could not be exported to ONNX; the message names the layer and what is wrong. */
export class OnnxExportError extends SlipwayError {
  declare readonly code: OnnxExportErrorCode;

  constructor(code: OnnxExportErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
