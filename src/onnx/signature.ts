import onnxProto from 'onnx-proto';
import type { Datatype, ModelSignature, TensorSpec } from '../model/types.ts';
import { OnnxExportError } from './errors.ts';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;

const DATATYPE_OF: ReadonlyMap<number, Datatype> = new Map<number, Datatype>([
  [T.FLOAT, 'FP32'],
  [T.DOUBLE, 'FP64'],
  [T.FLOAT16, 'FP16'],
  [T.INT8, 'INT8'],
  [T.INT16, 'INT16'],
  [T.INT32, 'INT32'],
  [T.INT64, 'INT64'],
  [T.UINT8, 'UINT8'],
  [T.UINT16, 'UINT16'],
  [T.UINT32, 'UINT32'],
  [T.UINT64, 'UINT64'],
  [T.BOOL, 'BOOL'],
  [T.STRING, 'BYTES'],
]);

function tensorSpec(info: onnxProto.onnx.IValueInfoProto): TensorSpec {
  const name = info.name ?? '';
  const tensorType = info.type?.tensorType;
  const datatype = DATATYPE_OF.get(tensorType?.elemType ?? T.UNDEFINED);
  if (!tensorType || !datatype) {
    throw new OnnxExportError(
      'ONNX_BAD_MODEL',
      `Graph value '${name}' is not a tensor of a supported element type.`,
    );
  }
  // A dimension without a fixed value (dim_param or nothing) is dynamic: -1 in the manifest.
  const shape = (tensorType.shape?.dim ?? []).map((d) =>
    d.dimValue !== null && d.dimValue !== undefined && Number(d.dimValue) > 0 ? Number(d.dimValue) : -1,
  );
  return { name, datatype, shape };
}

/**
 * Reads the input and output tensor specs (name, datatype, shape with -1 for dynamic dims) of ONNX model bytes.
 *
 * @example const signature = onnxSignature(exportToOnnx(model, { inputName: 'image' }))
 */
export function onnxSignature(bytes: Uint8Array): ModelSignature {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new OnnxExportError('ONNX_BAD_MODEL', 'The bytes are not an ONNX ModelProto.', { cause: err });
  }
  const graph = model.graph;
  if (!graph) throw new OnnxExportError('ONNX_BAD_MODEL', 'The ONNX model has no graph.');
  // Initializers may be listed as graph inputs too (older exporters); they are weights, not inputs.
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  return {
    inputs: (graph.input ?? []).filter((i) => !weights.has(i.name)).map(tensorSpec),
    outputs: (graph.output ?? []).map(tensorSpec),
  };
}
