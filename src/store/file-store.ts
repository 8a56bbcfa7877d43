import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StoreError } from './errors.ts';
import { pickNewestModelFrom } from './newest.ts';
import type { ObjectInfo, PutOptions } from './types.ts';
import { formatStoreUri } from './uri.ts';

/** Suffix of in-flight writes; listings skip them so readers never see half-written objects. */
const TEMP_SUFFIX = '.slipway-partial';

function fileUri(path: string): string {
  return formatStoreUri({ scheme: 'file', path });
}

function mapFsError(err: unknown, path: string, action: string): StoreError {
  const code = (err as NodeJS.ErrnoException).code;
  const uri = fileUri(path);
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
    return new StoreError('STORE_NOT_FOUND', `${uri}: no such file`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new StoreError('STORE_ACCESS_DENIED', `${uri}: permission denied (${action})`, { cause: err });
  }
  return new StoreError('STORE_IO', `${uri}: cannot ${action}: ${(err as Error).message}`, { cause: err });
}

class ProgressMeter extends Transform {
  bytes = 0;
  constructor(private readonly onProgress: ((bytes: number) => void) | undefined) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.onProgress?.(this.bytes);
    callback(null, chunk);
  }
}

/** The `file://` half of the object store: plain files, atomic writes, recursive listing. */
export class FileObjectStore {
  /** Opens the file first so a missing object fails here, not later inside the stream. */
  async get(path: string): Promise<Readable> {
    try {
      const handle = await open(path, 'r');
      const info = await handle.stat();
      if (!info.isFile()) {
        await handle.close();
        throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      }
      return handle.createReadStream({ highWaterMark: 1 << 16 });
    } catch (err) {
      throw mapFsError(err, path, 'read');
    }
  }

  /** Writes to a temp file beside the target, then renames: readers see the old object or the new, never half. */
  async put(
    path: string,
    body: Readable | Uint8Array | string,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    if (path.endsWith('/')) {
      throw new StoreError('STORE_BAD_URI', `${fileUri(path)} names a directory, not an object`);
    }
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
    try {
      await mkdir(dirname(path), { recursive: true });
      const source =
        typeof body === 'string' || body instanceof Uint8Array ? Readable.from([Buffer.from(body)]) : body;
      await pipeline(source, new ProgressMeter(options.onProgress), createWriteStream(temp, { flags: 'wx' }));
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      if (err instanceof StoreError) throw err;
      throw mapFsError(err, path, 'write');
    }
    return this.head(path);
  }

  async head(path: string): Promise<ObjectInfo> {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      throw mapFsError(err, path, 'stat');
    }
    if (!info.isFile()) throw new StoreError('STORE_NOT_FOUND', `${fileUri(path)}: not a regular file`);
    return { uri: fileUri(path), size: info.size, lastModified: info.mtime };
  }

  /** Like an S3 prefix: `/a/b/` lists everything under the directory, `/a/b` also matches `/a/bc/...`. */
  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    const root = prefix.endsWith('/') ? prefix : dirname(prefix);
    yield* this.#walk(root, prefix);
  }

  async *#walk(dir: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A missing prefix is an empty listing, as on S3.
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw mapFsError(err, dir, 'list');
    }
    for (const name of names) {
      if (name.endsWith(TEMP_SUFFIX)) continue;
      const full = join(dir, name);
      let info;
      let linked: boolean;
      try {
        linked = (await lstat(full)).isSymbolicLink();
        info = await stat(full);
      } catch (err) {
        // Vanished since readdir, or a dangling link: not an object.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw mapFsError(err, full, 'list');
      }
      if (info.isDirectory()) {
        // Linked directories are not followed: a link cycle would make the listing endless.
        if (linked) continue;
        const asDir = `${full}/`;
        if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) yield* this.#walk(full, prefix);
      } else if (info.isFile() && full.startsWith(prefix)) {
        yield { uri: fileUri(full), size: info.size, lastModified: info.mtime };
      }
    }
  }

  async newestModel(prefix: string): Promise<ObjectInfo> {
    const newest = await pickNewestModelFrom(this.list(prefix));
    if (!newest) throw new StoreError('STORE_NOT_FOUND', `no model.tar.gz under ${fileUri(prefix)}`);
    return newest;
  }
}
