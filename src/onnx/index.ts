export {
  exportToOnnx,
  BATCH_DIM_PARAM,
  MIN_OPSET,
  MAX_OPSET,
  SUPPORTED_ACTIVATIONS,
  SUPPORTED_LAYERS,
} from './export.ts';
export type { OnnxExportOptions } from './export.ts';
export { OnnxExportError, ONNX_EXPORT_ERROR_CODES } from './errors.ts';
export type { OnnxExportErrorCode } from './errors.ts';
