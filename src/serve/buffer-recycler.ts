/**
 * A small free list of batch buffers. A batch buffer goes to a worker thread (transferred, not
 * copied) and comes back with the results, so the next batch can reuse it instead of allocating:
 * at inference rates, fresh 100 KB–MB buffers are what drives V8 into major collections.
 *
 * Buffers come in power-of-two sizes so batches of varying row counts share them.
 */
export class BufferRecycler {
  readonly #free = new Map<number, ArrayBuffer[]>();
  readonly #maxPooledBytes: number;
  #pooledBytes = 0;

  /** @param maxPooledBytes most memory kept idle in the free list */
  constructor(maxPooledBytes = 64 * 1024 * 1024) {
    this.#maxPooledBytes = maxPooledBytes;
  }

  /** Bytes held idle right now. */
  get pooledBytes(): number {
    return this.#pooledBytes;
  }

  /** A buffer of at least `bytes` (its size rounded up to a power of two), reused when one is free. */
  readonly allocate = (bytes: number): ArrayBuffer => {
    const size = sizeClass(bytes);
    const reused = this.#free.get(size)?.pop();
    if (reused) {
      this.#pooledBytes -= size;
      return reused;
    }
    return new ArrayBuffer(size);
  };

  /** Takes a buffer back; ignored when it is detached, not one of ours by size, or the list is full. */
  release(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (size === 0 || size !== sizeClass(size) || this.#pooledBytes + size > this.#maxPooledBytes) return;
    const list = this.#free.get(size) ?? [];
    list.push(buffer);
    this.#free.set(size, list);
    this.#pooledBytes += size;
  }
}

function sizeClass(bytes: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(bytes, 1024)));
}
