import { chmod, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError, createStore, formatStoreUri } from '../../src/store/index.ts';
import { listAll, storeContract } from './store-contract.ts';

let root: string;
let counter = 0;
const store = createStore();
const prefix = (): string => formatStoreUri({ scheme: 'file', path: join(root, `t${++counter}`) + '/' });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-filestore-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('file:// store', () => {
  storeContract(() => ({ store, prefix }));

  it('creates parent directories on put', async () => {
    const base = prefix();
    await store.put(`${base}a/b/c/model.tar.gz`, 'x');
    expect((await store.head(`${base}a/b/c/model.tar.gz`)).size).toBe(1);
  });

  it('leaves no partial file behind when the body stream fails, and keeps the old object', async () => {
    const base = prefix();
    const uri = `${base}model.tar.gz`;
    await store.put(uri, 'old');
    const failing = Readable.from(
      (async function* () {
        yield Buffer.from('half of the new');
        await Promise.resolve();
        throw new Error('upload source broke');
      })(),
    );
    await expect(store.put(uri, failing)).rejects.toBeInstanceOf(StoreError);
    expect(await readdir(join(root, `t${counter}`))).toEqual(['model.tar.gz']);
    expect((await store.head(uri)).size).toBe(3);
  });

  it('does not list in-flight temp files', async () => {
    const base = prefix();
    const dir = join(root, `t${counter}`);
    await store.put(`${base}model.tar.gz`, 'x');
    await writeFile(join(dir, '.model.tar.gz.abc123.slipway-partial'), 'partial');
    expect((await listAll(store, base)).map((o) => o.uri)).toEqual([`${base}model.tar.gz`]);
  });

  // Root ignores file modes, so this cannot be observed when the tests run as root.
  it.skipIf(process.getuid?.() === 0)('maps a permission error to STORE_ACCESS_DENIED', async () => {
    const base = prefix();
    const uri = `${base}secret.bin`;
    await store.put(uri, 'x');
    await chmod(join(root, `t${counter}`, 'secret.bin'), 0o000);
    await expect(store.get(uri)).rejects.toMatchObject({ code: 'STORE_ACCESS_DENIED' });
  });

  it('treats a directory as not an object', async () => {
    const base = prefix();
    await store.put(`${base}dir/file.txt`, 'x');
    await expect(store.head(`${base}dir`)).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
  });

  it('lists linked files but does not follow a directory link back into itself', async () => {
    const base = prefix();
    const dir = join(root, `t${counter}`);
    await store.put(`${base}a/model.tar.gz`, 'x');
    await symlink(join(dir, 'a'), join(dir, 'a', 'loop'));
    await symlink(join(dir, 'a', 'model.tar.gz'), join(dir, 'linked.tar.gz'));
    await symlink(join(dir, 'gone'), join(dir, 'dangling'));
    expect((await listAll(store, base)).map((o) => o.uri).sort()).toEqual([
      `${base}a/model.tar.gz`,
      `${base}linked.tar.gz`,
    ]);
  });
});
