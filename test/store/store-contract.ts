import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { StoreError } from '../../src/store/index.ts';
import type { ObjectInfo, ObjectStore } from '../../src/store/index.ts';

/** What a backend's test file provides to the shared behaviour suite. */
export interface StoreUnderTest {
  readonly store: ObjectStore;
  /** A fresh prefix URI ending in `/`, unique per call. */
  readonly prefix: () => string;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function listAll(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const object of store.list(prefix)) out.push(object);
  return out;
}

async function storeErrorOf(promise: Promise<unknown>): Promise<StoreError> {
  const error: unknown = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(StoreError);
  return error as StoreError;
}

/** Behaviours every ObjectStore backend must share; call inside a describe block. */
export function storeContract(setup: () => StoreUnderTest): void {
  it('puts a string and gets the same bytes back, with matching head metadata', async () => {
    const { store, prefix } = setup();
    const uri = `${prefix()}greeting.txt`;
    const put = await store.put(uri, 'hello, store');
    expect(put.uri).toBe(uri);
    expect(put.size).toBe(12);
    expect((await readAll(await store.get(uri))).toString()).toBe('hello, store');
    const head = await store.head(uri);
    expect(head.uri).toBe(uri);
    expect(head.size).toBe(12);
    expect(Math.abs(head.lastModified.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('streams a multi-chunk Readable in and out unchanged', async () => {
    const { store, prefix } = setup();
    const uri = `${prefix()}stream.bin`;
    const chunks = Array.from({ length: 20 }, () => randomBytes(50_000));
    await store.put(uri, Readable.from(chunks));
    const back = await readAll(await store.get(uri));
    expect(sha256(back)).toBe(sha256(Buffer.concat(chunks)));
  });

  it('stores a Uint8Array and replaces an object on overwrite', async () => {
    const { store, prefix } = setup();
    const uri = `${prefix()}bytes.bin`;
    await store.put(uri, new Uint8Array([1, 2, 3]));
    await store.put(uri, new Uint8Array([4, 5]));
    expect([...(await readAll(await store.get(uri)))]).toEqual([4, 5]);
    expect((await store.head(uri)).size).toBe(2);
  });

  it('reports progress ending at the full size', async () => {
    const { store, prefix } = setup();
    const seen: number[] = [];
    await store.put(`${prefix()}progress.bin`, randomBytes(100_000), { onProgress: (n) => seen.push(n) });
    expect(seen.at(-1)).toBe(100_000);
  });

  it('throws STORE_NOT_FOUND from head and from get (not later from the stream) for a missing object', async () => {
    const { store, prefix } = setup();
    const uri = `${prefix()}missing.txt`;
    expect((await storeErrorOf(store.head(uri))).code).toBe('STORE_NOT_FOUND');
    const err = await storeErrorOf(store.get(uri));
    expect(err.code).toBe('STORE_NOT_FOUND');
    expect(err.message).toContain(uri);
  });

  it('rejects a prefix URI where an object is expected', async () => {
    const { store, prefix } = setup();
    expect((await storeErrorOf(store.get(prefix()))).code).toBe('STORE_BAD_URI');
    expect((await storeErrorOf(store.put(prefix(), 'x'))).code).toBe('STORE_BAD_URI');
  });

  it('lists everything under a prefix, recursively, and nothing outside it', async () => {
    const { store, prefix } = setup();
    const base = prefix();
    await store.put(`${base}a/one.txt`, '1');
    await store.put(`${base}a/deep/two.txt`, '22');
    await store.put(`${base}ab/three.txt`, '333');
    await store.put(`${base}b/four.txt`, '4444');
    const underA = (await listAll(store, `${base}a/`)).map((o) => o.uri).sort();
    expect(underA).toEqual([`${base}a/deep/two.txt`, `${base}a/one.txt`]);
    // Without a trailing slash the prefix is a plain string prefix, as on S3.
    const stringPrefix = (await listAll(store, `${base}a`)).map((o) => o.uri).sort();
    expect(stringPrefix).toEqual([`${base}a/deep/two.txt`, `${base}a/one.txt`, `${base}ab/three.txt`]);
    const sizes = new Map((await listAll(store, base)).map((o) => [o.uri, o.size]));
    expect(sizes.get(`${base}b/four.txt`)).toBe(4);
  });

  it('lists nothing under a prefix that does not exist', async () => {
    const { store, prefix } = setup();
    expect(await listAll(store, `${prefix()}nothing-here/`)).toEqual([]);
  });

  it('finds the newest model.tar.gz under a prefix, by time before key', async () => {
    const { store, prefix } = setup();
    const base = prefix();
    await store.put(`${base}job-b/output/model.tar.gz`, 'older');
    // S3 timestamps have one-second resolution.
    await sleep(1100);
    await store.put(`${base}job-a/output/model.tar.gz`, 'newer');
    await store.put(`${base}job-c/output/notes.txt`, 'not a model');
    const newest = await store.newestModel(base);
    expect(newest.uri).toBe(`${base}job-a/output/model.tar.gz`);
    expect(newest.size).toBe(5);
  });

  it('throws STORE_NOT_FOUND when no model is under the prefix', async () => {
    const { store, prefix } = setup();
    const base = prefix();
    await store.put(`${base}readme.txt`, 'no models here');
    const err = await storeErrorOf(store.newestModel(base));
    expect(err.code).toBe('STORE_NOT_FOUND');
    expect(err.message).toMatch(/no model\.tar\.gz under/);
  });
}
