import type { WireTensor } from './tensor-codec.ts';

/** `workerData` of an inference worker. */
export interface WorkerInit {
  readonly intraOpThreads: number;
  /** Threads of the second ("wide") session, used when the rest of the pool is idle; none when equal. */
  readonly idleIntraOpThreads: number;
  /** Nice value the worker gives its own thread (and so the onnxruntime threads it starts); 0 = none. */
  readonly nice: number;
}

/** Messages from the pool to a worker. */
export type WorkerRequest =
  | { readonly kind: 'load'; readonly path: string }
  | {
      readonly kind: 'run';
      readonly id: number;
      readonly feeds: Record<string, WireTensor>;
      readonly fetches: readonly string[] | undefined;
      /** Send the feeds' buffers back with the result, for reuse (see BufferRecycler). */
      readonly recycle: boolean;
      /** Every other worker is idle: run on the wide session. */
      readonly wide: boolean;
    };

/** Messages from a worker to the pool. */
export type WorkerReply =
  | { readonly kind: 'loaded' }
  | { readonly kind: 'load-error'; readonly message: string }
  | {
      readonly kind: 'result';
      readonly id: number;
      readonly outputs: Record<string, WireTensor>;
      /** The request's feed buffers, returned when it asked to recycle them. */
      readonly recycled: ArrayBuffer[];
    }
  | { readonly kind: 'run-error'; readonly id: number; readonly message: string };
