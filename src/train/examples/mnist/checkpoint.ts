import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MnistCheckpointError } from './errors.ts';

/** Pointer file naming the current checkpoint; written last, by rename, so it never names a partial file. */
export const CHECKPOINT_FILE = 'mnist-checkpoint.json';
const FORMAT = 'slipway-mnist-checkpoint';
const VERSION = 1;

/** Where in an epoch a checkpoint taken between batches (on SIGTERM) stands. */
export interface EpochPosition {
  /** Batches of the epoch after the completed ones that are already trained. */
  readonly batches: number;
  /** Generator state at the start of that epoch, before its shuffle: replaying it gives the same order. */
  readonly epochRngState: number;
  /** Batch size and training digits the position counts in; resuming needs the same. */
  readonly batchSize: number;
  readonly trainCount: number;
  /** Running sums of the epoch so far, so its log line covers the whole epoch. */
  readonly lossSum: number;
  readonly accSum: number;
  readonly seen: number;
}

/** What the trainer needs to resume. */
export interface CheckpointState {
  /** Completed epochs. */
  readonly epoch: number;
  /** State of the seeded generator, so shuffles and augmentation continue the same sequence. */
  readonly rngState: number;
  /** Hidden units of the network; a checkpoint only fits a model of the same size. */
  readonly hiddenUnits: number;
  /** Set when the checkpoint was taken inside an epoch; absent at an epoch boundary. */
  readonly position?: EpochPosition;
}

interface TensorEntry {
  readonly name: string;
  readonly dtype: 'float32' | 'int32';
  readonly shape: number[];
  readonly offset: number;
  readonly length: number;
}

interface CheckpointIndex extends CheckpointState {
  readonly format: typeof FORMAT;
  readonly version: number;
  readonly dataFile: string;
  readonly sha256: string;
  readonly weights: TensorEntry[];
  readonly optimizer: TensorEntry[];
}

async function packTensors(
  named: { name: string; tensor: tf.Tensor }[],
  chunks: Uint8Array[],
  offset: { value: number },
): Promise<TensorEntry[]> {
  const entries: TensorEntry[] = [];
  for (const { name, tensor } of named) {
    const dtype = tensor.dtype === 'int32' ? 'int32' : 'float32';
    const data =
      dtype === 'int32' ? Int32Array.from(await tensor.data()) : Float32Array.from(await tensor.data());
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    chunks.push(bytes);
    entries.push({ name, dtype, shape: tensor.shape, offset: offset.value, length: bytes.length });
    offset.value += bytes.length;
  }
  return entries;
}

function unpack(entry: TensorEntry, data: Buffer): tf.Tensor {
  const slice = data.subarray(entry.offset, entry.offset + entry.length);
  // Copy into an aligned buffer: a Buffer slice may start at any byte.
  const copy = new Uint8Array(slice).buffer;
  const values = entry.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy);
  return tf.tensor(values, entry.shape, entry.dtype);
}

/**
 * Saves the model's weights and optimizer state into `dir`. The data file gets a fresh name and the
 * pointer file is replaced by rename, so a kill at any moment leaves the previous checkpoint usable.
 */
export async function saveCheckpoint(
  dir: string,
  model: tf.LayersModel,
  state: CheckpointState,
): Promise<void> {
  const chunks: Uint8Array[] = [];
  const offset = { value: 0 };
  const weights = await packTensors(
    model.weights.map((w) => ({ name: w.originalName, tensor: w.read() })),
    chunks,
    offset,
  );
  const optimizerWeights = model.optimizer ? await model.optimizer.getWeights() : [];
  const optimizer = await packTensors(optimizerWeights, chunks, offset);
  const data = Buffer.concat(chunks);
  const dataFile = `mnist-checkpoint-${state.epoch}-${randomBytes(4).toString('hex')}.bin`;
  await writeFile(path.join(dir, dataFile), data);
  const index: CheckpointIndex = {
    format: FORMAT,
    version: VERSION,
    ...state,
    dataFile,
    sha256: createHash('sha256').update(data).digest('hex'),
    weights,
    optimizer,
  };
  const tmp = path.join(dir, `${CHECKPOINT_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(index));
  await rename(tmp, path.join(dir, CHECKPOINT_FILE));
  // Older data files are no longer referenced.
  for (const name of await readdir(dir)) {
    if (name.startsWith('mnist-checkpoint-') && name.endsWith('.bin') && name !== dataFile) {
      await rm(path.join(dir, name), { force: true });
    }
  }
}

/**
 * Loads the checkpoint in `dir` into `model` (weights and optimizer state) and returns its state, or
 * `undefined` when there is none. A checkpoint that is damaged or made for a different network size
 * is a {@link MnistCheckpointError}: silently starting over would hide lost training.
 */
export async function loadCheckpoint(
  dir: string,
  model: tf.LayersModel,
  hiddenUnits: number,
): Promise<CheckpointState | undefined> {
  const pointer = path.join(dir, CHECKPOINT_FILE);
  let text: string;
  try {
    text = await readFile(pointer, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let index: CheckpointIndex;
  try {
    index = JSON.parse(text) as CheckpointIndex;
  } catch (err) {
    throw new MnistCheckpointError(
      `${pointer} is not valid JSON; delete the checkpoint directory to start over.`,
      {
        cause: err,
      },
    );
  }
  if (index.format !== FORMAT || index.version !== VERSION) {
    throw new MnistCheckpointError(`${pointer} is not a ${FORMAT} v${VERSION} file.`);
  }
  if (index.hiddenUnits !== hiddenUnits) {
    throw new MnistCheckpointError(
      `the checkpoint in ${dir} was made with hidden-units=${index.hiddenUnits}, this job has ${hiddenUnits}; ` +
        'use the same hyperparameters or an empty checkpoint directory.',
    );
  }
  const dataPath = path.join(dir, path.basename(index.dataFile));
  const data = await readFile(dataPath).catch((err: unknown) => {
    throw new MnistCheckpointError(`${dataPath}, named by ${pointer}, cannot be read.`, { cause: err });
  });
  if (createHash('sha256').update(data).digest('hex') !== index.sha256) {
    throw new MnistCheckpointError(
      `${dataPath} does not match the checksum in ${pointer}; the checkpoint is damaged.`,
    );
  }
  const expected = model.weights.map((w) => w.shape.join('x')).join(',');
  const found = index.weights.map((w) => w.shape.join('x')).join(',');
  if (expected !== found) {
    throw new MnistCheckpointError(
      `the checkpoint's weight shapes (${found}) do not fit this model (${expected}).`,
    );
  }
  const weights = index.weights.map((entry) => unpack(entry, data));
  model.setWeights(weights);
  tf.dispose(weights);
  if (model.optimizer && index.optimizer.length > 0) {
    // setWeights keeps the tensors as its variables' initial values; they are not disposed here.
    await model.optimizer.setWeights(
      index.optimizer.map((entry) => ({ name: entry.name, tensor: unpack(entry, data) })),
    );
  }
  return {
    epoch: index.epoch,
    rngState: index.rngState,
    hiddenUnits: index.hiddenUnits,
    ...(index.position ? { position: index.position } : {}),
  };
}
