import { describe, expect, it } from 'vitest';
import { BufferRecycler } from '../../src/serve/buffer-recycler.ts';

describe('BufferRecycler', () => {
  it('hands out power-of-two buffers and reuses a released one of the same size', () => {
    const recycler = new BufferRecycler();
    const a = recycler.allocate(49_152 * 3);
    expect(a.byteLength).toBe(262_144);
    recycler.release(a);
    expect(recycler.pooledBytes).toBe(262_144);
    expect(recycler.allocate(200_000)).toBe(a);
    expect(recycler.pooledBytes).toBe(0);
    expect(recycler.allocate(200_000)).not.toBe(a);
  });

  it('ignores detached buffers, foreign sizes, and anything past its memory cap', () => {
    const recycler = new BufferRecycler(4096);
    const detached = recycler.allocate(2048);
    structuredClone(detached, { transfer: [detached] });
    recycler.release(detached);
    recycler.release(new ArrayBuffer(3000));
    expect(recycler.pooledBytes).toBe(0);
    recycler.release(recycler.allocate(4096));
    recycler.release(recycler.allocate(4096));
    expect(recycler.pooledBytes).toBe(4096);
  });
});
