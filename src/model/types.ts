/** Tensor element types of the Open Inference Protocol v2 (and of the manifest). */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;

/** One element type, e.g. `FP32`. */
export type Datatype = (typeof DATATYPES)[number];

/** Name, element type and shape of one model input or output; -1 marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

/** A model's inputs and outputs, in graph order. */
export interface ModelSignature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** The `manifest.json` inside a model artifact (validated by the schema in manifest.ts). */
export interface Manifest extends ModelSignature {
  readonly name: string;
  readonly version: string;
  /** ISO-8601 timestamp. */
  readonly createdAt: string;
  /** Class labels, index-aligned with the classifier's score output. */
  readonly labels?: readonly string[];
  /** Training metrics such as `test_accuracy`. */
  readonly metrics?: Readonly<Record<string, number>>;
  /** Lower-case hex SHA-256 of `model.onnx`. */
  readonly sha256: string;
  /** Free-form description of where the model came from (framework, job name). */
  readonly framework?: string;
}

/** A model artifact extracted into its own private directory and checked. */
export interface UnpackedModel {
  /** The fresh private directory holding the extracted files. */
  readonly dir: string;
  /** Absolute path of `model.onnx`. */
  readonly onnxPath: string;
  /** The manifest, when the artifact has one. */
  readonly manifest: Manifest | undefined;
  /** From the manifest, or read from the ONNX graph itself when there is no manifest. */
  readonly signature: ModelSignature;
  /** SHA-256 of `model.onnx` (verified against the manifest when there is one). */
  readonly sha256: string;
}
