import type * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import { OnnxExportError } from './errors.ts';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** Options of {@link exportToOnnx}. */
export interface OnnxExportOptions {
  /**
   * Name of the graph input.
   * @default 'input'
   */
  readonly inputName?: string;
  /**
   * Name of the graph output.
   * @default 'output'
   */
  readonly outputName?: string;
  /**
   * ONNX operator set version (default domain), between {@link MIN_OPSET} and {@link MAX_OPSET}.
   * @default 13
   */
  readonly opset?: number;
  /**
   * Name of the ONNX graph.
   * @default the TensorFlow.js model's name
   */
  readonly modelName?: string;
}

/** Lowest opset the exporter targets: Softmax takes a real `axis` from 13 on. */
export const MIN_OPSET = 13;
/** Highest opset the exporter has been checked against (onnxruntime-node 1.30 runs it). */
export const MAX_OPSET = 21;
/** Name of the dynamic batch dimension in the exported graph's input and output. */
export const BATCH_DIM_PARAM = 'batch';
/** Layer classes {@link exportToOnnx} translates. */
export const SUPPORTED_LAYERS = [
  'InputLayer',
  'Dense',
  'Conv2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'Flatten',
  'Reshape',
  'Dropout',
  'Activation',
  'ReLU',
  'Softmax',
] as const;
/** Activation names {@link exportToOnnx} translates (as a layer's `activation` or an Activation layer). */
export const SUPPORTED_ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'softmax',
  'elu',
] as const;

// IR version 8 goes with opsets 14-15; onnxruntime accepts it for every opset in our range.
const IR_VERSION = 8;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/**
 * A value flowing through the graph. TF.js keeps images channels-last (NHWC); ONNX Conv and
 * pooling want NCHW. Rank-4 values remember their layout so consecutive convolutions share one
 * transpose, and everything that depends on element order (Flatten, Reshape, Dense, Softmax,
 * the graph output) sees channels-last data, exactly as in TF.js.
 */
interface Value {
  readonly name: string;
  readonly layout: 'channelsLast' | 'nchw';
}

type LayerConfig = tf.serialization.ConfigDict;

class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly used = new Set<string>();

  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  reserve(name: string): void {
    this.used.add(name);
  }

  node(opType: string, inputs: string[], outputBase: string, attribute: AttributeProto[] = []): string {
    const output = this.unique(outputBase);
    this.nodes.push({ opType, input: inputs, output: [output], name: output, attribute });
    return output;
  }

  floatConstant(base: string, dims: number[], values: Float32Array | readonly number[]): string {
    const name = this.unique(base);
    const bytes = new Uint8Array(values.length * 4);
    const view = new DataView(bytes.buffer);
    // ONNX raw_data is little-endian whatever the host is.
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] ?? 0, true);
    this.initializers.push({ name, dataType: FLOAT, dims, rawData: bytes });
    return name;
  }

  int64Constant(base: string, values: readonly number[]): string {
    const name = this.unique(base);
    const bytes = new Uint8Array(values.length * 8);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
    this.initializers.push({ name, dataType: INT64, dims: [values.length], rawData: bytes });
    return name;
  }
}

function intsAttr(name: string, ints: readonly number[]): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...ints] };
}
function intAttr(name: string, i: number): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}
function stringAttr(name: string, s: string): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(s) };
}

function describe(layer: tf.layers.Layer): string {
  return `layer '${layer.name}' (${layer.getClassName()})`;
}

function configError(layer: tf.layers.Layer, what: string): OnnxExportError {
  return new OnnxExportError('ONNX_UNSUPPORTED_CONFIG', `Cannot export ${describe(layer)} to ONNX: ${what}.`);
}

function pair(
  layer: tf.layers.Layer,
  config: LayerConfig,
  key: string,
  fallback?: readonly number[],
): number[] {
  const raw = config[key] ?? fallback;
  const value = typeof raw === 'number' ? [raw, raw] : raw;
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0)
  ) {
    throw configError(layer, `${key} must be two positive integers, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function requireChannelsLast(layer: tf.layers.Layer, config: LayerConfig): void {
  const format = config['dataFormat'] ?? 'channelsLast';
  if (format !== 'channelsLast')
    throw configError(layer, `dataFormat ${JSON.stringify(format)} is not supported`);
}

/**
 * TF's 'same' padding puts the odd extra pixel at the end. The pads are written out explicitly
 * (rather than auto_pad SAME_UPPER) because onnxruntime rejects auto_pad with dilations.
 */
function paddingAttrs(
  layer: tf.layers.Layer,
  config: LayerConfig,
  inputShape: tf.Shape,
  kernel: readonly number[],
  strides: readonly number[],
  dilations: readonly number[] = [1, 1],
): AttributeProto[] {
  const padding = config['padding'] ?? 'valid';
  if (padding === 'valid') return [intsAttr('pads', [0, 0, 0, 0])];
  if (padding !== 'same') throw configError(layer, `padding ${JSON.stringify(padding)} is not supported`);
  const begin: number[] = [];
  const end: number[] = [];
  for (let axis = 0; axis < 2; axis++) {
    const size = inputShape[axis + 1];
    const k = kernel[axis] ?? 1;
    const s = strides[axis] ?? 1;
    const d = dilations[axis] ?? 1;
    if (typeof size !== 'number') {
      if (d !== 1)
        throw configError(layer, "'same' padding with dilation needs fixed spatial input dimensions");
      return [stringAttr('auto_pad', 'SAME_UPPER')];
    }
    const out = Math.ceil(size / s);
    const total = Math.max((out - 1) * s + (k - 1) * d + 1 - size, 0);
    begin.push(Math.floor(total / 2));
    end.push(total - Math.floor(total / 2));
  }
  return [intsAttr('pads', [...begin, ...end])];
}

function weightValues(layer: tf.layers.Layer): { data: Float32Array; shape: number[] }[] {
  return layer.getWeights().map((w) => ({ data: w.dataSync() as Float32Array, shape: w.shape }));
}

/** Reorders a TF.js conv kernel [kh, kw, in, out] into ONNX's [out, in, kh, kw]. */
function convKernelToOihw(data: Float32Array, shape: number[]): { data: Float32Array; dims: number[] } {
  const [kh = 0, kw = 0, cin = 0, cout = 0] = shape;
  const out = new Float32Array(data.length);
  for (let h = 0; h < kh; h++)
    for (let w = 0; w < kw; w++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) {
          out[((o * cin + i) * kh + h) * kw + w] = data[((h * kw + w) * cin + i) * cout + o] ?? 0;
        }
  return { data: out, dims: [cout, cin, kh, kw] };
}

class Exporter {
  readonly g = new GraphBuilder();

  toChannelsLast(v: Value, layer: tf.layers.Layer): Value {
    if (v.layout === 'channelsLast') return v;
    const name = this.g.node('Transpose', [v.name], `${layer.name}/to_nhwc`, [
      intsAttr('perm', [0, 2, 3, 1]),
    ]);
    return { name, layout: 'channelsLast' };
  }

  toNchw(v: Value, layer: tf.layers.Layer): Value {
    if (v.layout === 'nchw') return v;
    const name = this.g.node('Transpose', [v.name], `${layer.name}/to_nchw`, [
      intsAttr('perm', [0, 3, 1, 2]),
    ]);
    return { name, layout: 'nchw' };
  }

  activation(v: Value, layer: tf.layers.Layer, activation: unknown): Value {
    const act =
      activation === undefined || activation === null
        ? 'linear'
        : typeof activation === 'string'
          ? activation
          : JSON.stringify(activation);
    const base = `${layer.name}/${act}`;
    switch (act) {
      case 'linear':
        return v;
      case 'relu':
        return { name: this.g.node('Relu', [v.name], base), layout: v.layout };
      case 'relu6':
        return this.clip(v, layer, 0, 6);
      case 'sigmoid':
        return { name: this.g.node('Sigmoid', [v.name], base), layout: v.layout };
      case 'tanh':
        return { name: this.g.node('Tanh', [v.name], base), layout: v.layout };
      case 'elu':
        return { name: this.g.node('Elu', [v.name], base), layout: v.layout };
      case 'softmax':
        return this.softmax(this.toChannelsLast(v, layer), layer, -1);
      default:
        throw configError(
          layer,
          `activation '${act}' is not supported (supported: ${SUPPORTED_ACTIVATIONS.join(', ')})`,
        );
    }
  }

  clip(v: Value, layer: tf.layers.Layer, min: number, max: number): Value {
    const lo = this.g.floatConstant(`${layer.name}/clip_min`, [], [min]);
    const hi = this.g.floatConstant(`${layer.name}/clip_max`, [], [max]);
    return { name: this.g.node('Clip', [v.name, lo, hi], `${layer.name}/clip`), layout: v.layout };
  }

  softmax(v: Value, layer: tf.layers.Layer, axis: number): Value {
    const name = this.g.node('Softmax', [v.name], `${layer.name}/softmax`, [intAttr('axis', axis)]);
    return { name, layout: v.layout };
  }

  layer(layer: tf.layers.Layer, input: Value, inputShape: tf.Shape): Value {
    const config = layer.getConfig();
    const cls = layer.getClassName();
    switch (cls) {
      case 'InputLayer':
      case 'Dropout':
        // Dropout only acts while training; at inference it is the identity.
        return input;
      case 'Dense':
        return this.dense(layer, config, input);
      case 'Conv2D':
        return this.conv2d(layer, config, input, inputShape);
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        return this.pool(
          layer,
          config,
          input,
          inputShape,
          cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool',
        );
      case 'Flatten': {
        const v = this.toChannelsLast(input, layer);
        return {
          name: this.g.node('Flatten', [v.name], `${layer.name}/flatten`, [intAttr('axis', 1)]),
          layout: 'channelsLast',
        };
      }
      case 'Reshape': {
        const target = config['targetShape'];
        if (!Array.isArray(target) || !target.every((d) => typeof d === 'number')) {
          throw configError(layer, `targetShape ${JSON.stringify(target)} is not a list of numbers`);
        }
        const v = this.toChannelsLast(input, layer);
        // 0 copies the (dynamic) batch dimension from the input.
        const shape = this.g.int64Constant(`${layer.name}/shape`, [0, ...target]);
        return {
          name: this.g.node('Reshape', [v.name, shape], `${layer.name}/reshape`),
          layout: 'channelsLast',
        };
      }
      case 'Activation':
        return this.activation(input, layer, config['activation']);
      case 'ReLU': {
        const negativeSlope = config['negativeSlope'] ?? 0;
        const threshold = config['threshold'] ?? 0;
        if (negativeSlope !== 0 || threshold !== 0) {
          throw configError(layer, 'ReLU with negativeSlope or threshold is not supported');
        }
        const maxValue = config['maxValue'];
        if (typeof maxValue === 'number') return this.clip(input, layer, 0, maxValue);
        return this.activation(input, layer, 'relu');
      }
      case 'Softmax': {
        const rawAxis = config['axis'] ?? -1;
        const axis = Array.isArray(rawAxis) && rawAxis.length === 1 ? rawAxis[0] : rawAxis;
        if (typeof axis !== 'number')
          throw configError(layer, `axis ${JSON.stringify(rawAxis)} is not supported`);
        return this.softmax(
          this.toChannelsLast(input, layer),
          layer,
          axis < 0 ? axis : axis - inputShape.length,
        );
      }
      default:
        throw new OnnxExportError(
          'ONNX_UNSUPPORTED_LAYER',
          `Cannot export ${describe(layer)} to ONNX: layer class ${cls} is not supported ` +
            `(supported: ${SUPPORTED_LAYERS.join(', ')}).`,
        );
    }
  }

  dense(layer: tf.layers.Layer, config: LayerConfig, input: Value): Value {
    const v = this.toChannelsLast(input, layer);
    const [kernel, bias] = weightValues(layer);
    if (!kernel) throw configError(layer, 'the layer has no weights (was the model built?)');
    const w = this.g.floatConstant(`${layer.name}/kernel`, kernel.shape, kernel.data);
    let out = this.g.node('MatMul', [v.name, w], `${layer.name}/matmul`);
    if (bias) {
      const b = this.g.floatConstant(`${layer.name}/bias`, bias.shape, bias.data);
      out = this.g.node('Add', [out, b], `${layer.name}/bias_add`);
    }
    return this.activation({ name: out, layout: 'channelsLast' }, layer, config['activation']);
  }

  conv2d(layer: tf.layers.Layer, config: LayerConfig, input: Value, inputShape: tf.Shape): Value {
    requireChannelsLast(layer, config);
    const v = this.toNchw(input, layer);
    const [kernel, bias] = weightValues(layer);
    if (!kernel) throw configError(layer, 'the layer has no weights (was the model built?)');
    const oihw = convKernelToOihw(kernel.data, kernel.shape);
    const inputs = [v.name, this.g.floatConstant(`${layer.name}/kernel`, oihw.dims, oihw.data)];
    if (bias) inputs.push(this.g.floatConstant(`${layer.name}/bias`, bias.shape, bias.data));
    const kernelShape = oihw.dims.slice(2);
    const strides = pair(layer, config, 'strides', [1, 1]);
    const dilations = pair(layer, config, 'dilationRate', [1, 1]);
    const attrs = [
      intsAttr('kernel_shape', kernelShape),
      intsAttr('strides', strides),
      intsAttr('dilations', dilations),
      ...paddingAttrs(layer, config, inputShape, kernelShape, strides, dilations),
    ];
    const out = this.g.node('Conv', inputs, `${layer.name}/conv`, attrs);
    return this.activation({ name: out, layout: 'nchw' }, layer, config['activation']);
  }

  pool(
    layer: tf.layers.Layer,
    config: LayerConfig,
    input: Value,
    inputShape: tf.Shape,
    op: 'MaxPool' | 'AveragePool',
  ): Value {
    requireChannelsLast(layer, config);
    const v = this.toNchw(input, layer);
    const poolSize = pair(layer, config, 'poolSize', [2, 2]);
    const strides = pair(layer, config, 'strides', poolSize);
    const attrs = [
      intsAttr('kernel_shape', poolSize),
      intsAttr('strides', strides),
      ...paddingAttrs(layer, config, inputShape, poolSize, strides),
    ];
    // AveragePool's default count_include_pad=0 matches TF, which averages only real pixels.
    return { name: this.g.node(op, [v.name], `${layer.name}/${op.toLowerCase()}`, attrs), layout: 'nchw' };
  }
}

function checkName(option: string, value: string): string {
  if (value.trim() === '') {
    throw new OnnxExportError('ONNX_BAD_OPTION', `${option} must be a non-empty string.`);
  }
  return value;
}

function valueInfo(name: string, shape: tf.Shape): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: {
          dim: shape.map((d, i) =>
            d === null ? { dimParam: i === 0 ? BATCH_DIM_PARAM : `dim_${i}` } : { dimValue: d },
          ),
        },
      },
    },
  };
}

function singleton<T>(items: readonly T[], what: string): T {
  const [first] = items;
  if (items.length !== 1 || first === undefined) {
    throw new OnnxExportError(
      'ONNX_UNSUPPORTED_TOPOLOGY',
      `Cannot export a model with ${items.length} ${what}s to ONNX: exactly one is supported.`,
    );
  }
  return first;
}

/**
 * Translates a TensorFlow.js layers model into ONNX ModelProto bytes with a dynamic batch dimension.
 *
 * The graph input keeps the TF.js input layout (e.g. NHWC images), so clients send the same tensor
 * they would give `model.predict`. Throws {@link OnnxExportError} naming any unsupported layer.
 *
 * @example writeFileSync('model.onnx', exportToOnnx(model, { inputName: 'image', outputName: 'scores' }))
 */
export function exportToOnnx(model: tf.LayersModel, options: OnnxExportOptions = {}): Uint8Array {
  const inputName = checkName('inputName', options.inputName ?? 'input');
  const outputName = checkName('outputName', options.outputName ?? 'output');
  const modelName = checkName('modelName', options.modelName ?? model.name);
  const opset = options.opset ?? MIN_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new OnnxExportError(
      'ONNX_BAD_OPTION',
      `opset must be an integer from ${MIN_OPSET} to ${MAX_OPSET}, got ${String(opset)}.`,
    );
  }
  if (inputName === outputName) {
    throw new OnnxExportError(
      'ONNX_BAD_OPTION',
      `inputName and outputName must differ (both '${inputName}').`,
    );
  }

  const modelInput = singleton(model.inputs, 'input');
  const modelOutput = singleton(model.outputs, 'output');
  if (modelInput.dtype !== 'float32') {
    throw new OnnxExportError(
      'ONNX_UNSUPPORTED_CONFIG',
      `Cannot export the model's input of dtype ${modelInput.dtype}: only float32 is supported.`,
    );
  }

  const exporter = new Exporter();
  exporter.g.reserve(inputName);
  exporter.g.reserve(outputName);
  const done = new Map<number, Value>([[modelInput.id, { name: inputName, layout: 'channelsLast' }]]);

  // Walk back from the output to the input; layers are emitted in dependency order.
  const visit = (t: tf.SymbolicTensor, depth: number): Value => {
    const known = done.get(t.id);
    if (known) return known;
    const layer = t.sourceLayer;
    if (depth > 10_000) {
      throw new OnnxExportError(
        'ONNX_UNSUPPORTED_TOPOLOGY',
        `The model graph is too deep at ${describe(layer)}.`,
      );
    }
    const source = t.inputs;
    const [only] = source;
    if (source.length !== 1 || only === undefined) {
      throw new OnnxExportError(
        'ONNX_UNSUPPORTED_TOPOLOGY',
        `Cannot export ${describe(layer)} to ONNX: it takes ${source.length} inputs; only single-input layers are supported.`,
      );
    }
    const value = exporter.layer(layer, visit(only, depth + 1), only.shape);
    done.set(t.id, value);
    return value;
  };
  const lastLayer = modelOutput.sourceLayer;
  const result = exporter.toChannelsLast(visit(modelOutput, 0), lastLayer);

  // Name the graph output by renaming the last node's output, or by an Identity when the model
  // computes nothing at all (e.g. only Dropout).
  const g = exporter.g;
  const last = g.nodes.at(-1);
  if (last?.output?.[0] === result.name && result.name !== inputName) {
    last.output = [outputName];
  } else {
    g.nodes.push({
      opType: 'Identity',
      input: [result.name],
      output: [outputName],
      name: `${lastLayer.name}/identity`,
    });
  }

  const bytes = onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'slipway',
    producerVersion: '1',
    graph: {
      name: modelName,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(inputName, modelInput.shape)],
      output: [valueInfo(outputName, modelOutput.shape)],
    },
  }).finish();
  return bytes;
}
