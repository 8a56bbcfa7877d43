/** What the batching policy needs to know about one queued request. */
export interface QueuedItem {
  /** Requests batch together only when their keys match (input names, datatypes, non-batch dims). */
  readonly key: string;
  /** Rows along dim 0. */
  readonly rows: number;
  /** False when the model cannot batch (fixed dim 0) or the request must run alone. */
  readonly batchable: boolean;
  /** Milliseconds timestamp of arrival. */
  readonly enqueuedAt: number;
}

/** Batching limits. */
export interface BatchPolicy {
  /** Most rows in one batch; 1 turns batching off. */
  readonly maxBatchSize: number;
  /** Longest the oldest request waits for its batch to fill while other work is running. */
  readonly maxDelayMs: number;
}

/** What the worker pool is doing right now. */
export interface PoolLoad {
  readonly idleWorkers: number;
  readonly busyWorkers: number;
}

/** The policy's answer: run these queue indices now, check again after `ms`, or do nothing. */
export type BatchDecision =
  | { readonly kind: 'run'; readonly take: readonly number[]; readonly rows: number }
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'idle' };

/**
 * Decides the next batch from the queue (oldest first).
 *
 * The oldest request picks the key; later requests with the same key join while the rows fit.
 * The batch runs at once when it is full, when nothing else is running (waiting on an idle pool
 * only adds latency: at concurrency 1 the server answers as fast as a bare session), or when the
 * oldest request has waited `maxDelayMs`. Otherwise the caller checks again after the returned delay.
 */
export function decideBatch(
  queue: readonly QueuedItem[],
  policy: BatchPolicy,
  load: PoolLoad,
  now: number,
): BatchDecision {
  const head = queue[0];
  if (head === undefined || load.idleWorkers <= 0) return { kind: 'idle' };
  if (!head.batchable || policy.maxBatchSize <= 1 || head.rows >= policy.maxBatchSize) {
    return { kind: 'run', take: [0], rows: head.rows };
  }
  const take = [0];
  let rows = head.rows;
  let full = false;
  for (let i = 1; i < queue.length; i++) {
    const item = queue[i]!;
    if (!item.batchable || item.key !== head.key) continue;
    if (rows + item.rows > policy.maxBatchSize) {
      full = true;
      break;
    }
    take.push(i);
    rows += item.rows;
    if (rows === policy.maxBatchSize) {
      full = true;
      break;
    }
  }
  const waited = now - head.enqueuedAt;
  if (full || load.busyWorkers === 0 || waited >= policy.maxDelayMs) return { kind: 'run', take, rows };
  return { kind: 'wait', ms: Math.max(1, policy.maxDelayMs - waited) };
}
