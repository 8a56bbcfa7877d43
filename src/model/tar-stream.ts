import { Header, Pax } from 'tar';
import type { HeaderData } from 'tar';
import { ArtifactError } from './errors.ts';

/** Tar block size; headers and bodies are aligned to it. */
const BLOCK = 512;
/** Pax and GNU long-name bodies are metadata: a few KiB at most in real archives. */
const MAX_META_BYTES = 1 << 20;

/** One validated entry of a tarball, handed to the extractor before its body is read. */
export type TarEntry =
  | { readonly kind: 'directory'; readonly path: string; readonly index: number }
  | {
      readonly kind: 'file';
      readonly path: string;
      readonly size: number;
      readonly index: number;
      /** The body in pieces; must be consumed fully before the next entry is read. */
      readonly body: AsyncGenerator<Buffer>;
    };

/** Pulls exact byte counts out of an async iterator of chunks. */
class ByteReader {
  #buffer: Buffer = Buffer.alloc(0);
  #done = false;
  /** Bytes handed out so far. */
  position = 0;
  readonly #iterator: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    if (this.#done) return false;
    const next = await this.#iterator.next();
    if (next.done) {
      this.#done = true;
      return false;
    }
    this.#buffer = this.#buffer.length === 0 ? next.value : Buffer.concat([this.#buffer, next.value]);
    return true;
  }

  /** Exactly `n` bytes; `undefined` at a clean end of input; throws if input ends part-way. */
  async exact(n: number, what: string): Promise<Buffer | undefined> {
    while (this.#buffer.length < n) {
      if (!(await this.#fill())) {
        if (this.#buffer.length === 0) return undefined;
        throw new ArtifactError('ARTIFACT_TRUNCATED', `archive ends in the middle of ${what}`);
      }
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    this.position += n;
    return out;
  }

  /** Streams exactly `n` bytes in pieces as they arrive (constant memory). */
  async *pieces(n: number, what: string): AsyncGenerator<Buffer> {
    let remaining = n;
    while (remaining > 0) {
      if (this.#buffer.length === 0 && !(await this.#fill())) {
        throw new ArtifactError('ARTIFACT_TRUNCATED', `archive ends in the middle of ${what}`);
      }
      const take = Math.min(remaining, this.#buffer.length);
      const piece = this.#buffer.subarray(0, take);
      this.#buffer = this.#buffer.subarray(take);
      this.position += take;
      remaining -= take;
      yield piece;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.pieces(n, what)) {
      // discard
    }
  }

  /** Reads and discards everything left (so the gzip trailer's CRC still gets checked). */
  async drain(): Promise<void> {
    this.#buffer = Buffer.alloc(0);
    while (await this.#fill()) this.#buffer = Buffer.alloc(0);
  }
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * Turns an entry name into a safe relative path (`a/b`), or `''` for the archive root (`./`).
 * Throws ARTIFACT_UNSAFE_ENTRY for absolute paths, `..`, backslashes and NULs.
 */
export function safeEntryPath(raw: string): string {
  const unsafe = (why: string): ArtifactError =>
    new ArtifactError('ARTIFACT_UNSAFE_ENTRY', `unsafe entry path ${JSON.stringify(raw)}: ${why}`);
  if (raw.includes('\0')) throw unsafe('contains a NUL byte');
  if (raw.includes('\\')) throw unsafe('contains a backslash');
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) throw unsafe('absolute path');
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw unsafe('contains ".."');
  return parts.join('/');
}

/** Keys a global pax header may not set: GNU tar applies them to every later entry, node-tar does not. */
const PER_ENTRY_PAX_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'size']);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks a pax header body record by record before node-tar's `Pax.parse` reads it. That parser drops
 * malformed records, cuts values at a NUL, splits records on newlines and reads `size` with `Number()`
 * (`0x10` is 16), where GNU tar and Python read the same bytes otherwise or refuse them; an archive
 * that each tool reads differently could hide a model from anyone who inspects it with another tool.
 * Returns the keys the header sets.
 */
function checkPaxRecords(body: Buffer, global: boolean, what: string): ReadonlySet<string> {
  const keys = new Set<string>();
  const corrupt = (why: string): ArtifactError =>
    new ArtifactError('ARTIFACT_TRUNCATED', `corrupt pax header ${what}: ${why}`);
  let offset = 0;
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset);
    const lengthText = space === -1 ? '' : body.toString('latin1', offset, space);
    const end = offset + Number(lengthText);
    if (!/^[0-9]+$/.test(lengthText) || end <= space + 1 || end > body.length || body[end - 1] !== 0x0a) {
      throw corrupt(
        `the record at byte ${offset} does not end where its length ${JSON.stringify(lengthText)} says`,
      );
    }
    let record: string;
    try {
      record = strictUtf8.decode(body.subarray(space + 1, end - 1));
    } catch (err) {
      throw new ArtifactError('ARTIFACT_TRUNCATED', `corrupt pax header ${what}: a record is not UTF-8`, {
        cause: err,
      });
    }
    const equals = record.indexOf('=');
    if (equals <= 0) throw corrupt(`record ${JSON.stringify(record)} is not key=value`);
    const key = record.slice(0, equals);
    const value = record.slice(equals + 1);
    if (/[\0\n]/.test(record)) {
      throw new ArtifactError(
        'ARTIFACT_UNSAFE_ENTRY',
        `pax header ${what} record ${JSON.stringify(record)} contains a NUL or newline`,
      );
    }
    if (key.startsWith('GNU.sparse.')) {
      throw new ArtifactError(
        'ARTIFACT_SPECIAL_FILE',
        `pax header ${what} describes a sparse file (${key}): artifacts may hold only regular files and directories`,
      );
    }
    if (key === 'size' && !/^[0-9]+$/.test(value)) {
      throw corrupt(`size ${JSON.stringify(value)} is not decimal`);
    }
    if (global && PER_ENTRY_PAX_KEYS.has(key)) {
      throw new ArtifactError(
        'ARTIFACT_UNSAFE_ENTRY',
        `global pax header ${what} sets ${key}, which tar readers apply to later entries differently`,
      );
    }
    keys.add(key);
    offset = end;
  }
  return keys;
}

/**
 * True when a header's raw size field is one every tar reader decodes alike: octal digits padded with
 * spaces or NULs, empty (0), or positive base-256. node-tar reads anything else as 0 or as the digits
 * before the junk, where GNU tar and Python reject the archive.
 */
function sizeFieldReadable(block: Buffer): boolean {
  const field = block.subarray(124, 136);
  if (((field[0] ?? 0) & 0x80) !== 0) return field[0] === 0x80;
  return /^ *[0-7]* *(?:\0.*)?$/s.test(field.toString('latin1'));
}

function metaText(body: Buffer): string {
  const nul = body.indexOf(0);
  return body.subarray(0, nul === -1 ? body.length : nul).toString('utf8');
}

/**
 * Parses a decompressed tar stream and yields only safe entries: regular files and directories.
 *
 * Headers are decoded with node-tar's `Header` and `Pax` (ustar, pax and GNU long names), but
 * every decision about what to accept is made here: links, devices, FIFOs and unknown types are
 * rejected, not skipped, because an artifact that contains them was not made by a trainer.
 */
export async function* readTarEntries(
  source: AsyncIterable<Buffer>,
  options: { readonly maxEntries: number },
): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let extended: HeaderData | undefined;
  let globalExtended: HeaderData | undefined;
  let count = 0;
  for (;;) {
    const block = await reader.exact(BLOCK, 'a header');
    if (!block) break;
    const header = new Header(block, 0, extended, globalExtended);
    if (header.nullBlock) break;
    count++;
    if (count > options.maxEntries) {
      throw new ArtifactError(
        'ARTIFACT_TOO_MANY_ENTRIES',
        `archive has more than ${options.maxEntries} entries (headers)`,
      );
    }
    if (!header.cksumValid) {
      throw new ArtifactError(
        'ARTIFACT_TRUNCATED',
        `corrupt tar header at entry ${count} (checksum mismatch)`,
      );
    }
    const typeCode = String.fromCharCode(block[156] ?? 0);
    const name = header.path ?? '';
    const what = `entry ${JSON.stringify(name)}`;
    if (!sizeFieldReadable(block)) {
      const field = JSON.stringify(block.toString('latin1', 124, 136));
      throw new ArtifactError('ARTIFACT_TRUNCATED', `corrupt tar header for ${what} (size field ${field})`);
    }
    const size = header.size ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ArtifactError('ARTIFACT_TRUNCATED', `corrupt tar header at entry ${count} (size ${size})`);
    }

    if (typeCode === 'x' || typeCode === 'g' || typeCode === 'L' || typeCode === 'K') {
      if (size > MAX_META_BYTES) {
        throw new ArtifactError('ARTIFACT_TOO_LARGE', `tar metadata entry ${count} is ${size} bytes`);
      }
      const body = size === 0 ? Buffer.alloc(0) : await reader.exact(size, what);
      if (!body) throw new ArtifactError('ARTIFACT_TRUNCATED', `archive ends in the middle of ${what}`);
      await reader.skip(padding(size), what);
      let setsPath = typeCode === 'L';
      if (typeCode === 'x' || typeCode === 'g') {
        setsPath = checkPaxRecords(body, typeCode === 'g', what).has('path');
      }
      // GNU tar lets a pax path win over a GNU long name whichever comes first, node-tar the later one.
      if (setsPath && extended?.path !== undefined) {
        throw new ArtifactError(
          'ARTIFACT_UNSAFE_ENTRY',
          `entry ${count + 1} is named twice, ${JSON.stringify(extended.path)} and again by ${what}: tar readers disagree on which name wins`,
        );
      }
      if (typeCode === 'x') extended = Pax.parse(body.toString('utf8'), extended, false);
      else if (typeCode === 'g') globalExtended = Pax.parse(body.toString('utf8'), globalExtended, true);
      else if (typeCode === 'L') extended = { ...extended, path: metaText(body) };
      else extended = { ...extended, linkpath: metaText(body) };
      continue;
    }
    extended = undefined;

    switch (typeCode) {
      case '1':
      case '2':
        throw new ArtifactError(
          'ARTIFACT_LINK',
          `${typeCode === '1' ? 'hard link' : 'symbolic link'} ${JSON.stringify(name)} -> ${JSON.stringify(header.linkpath ?? '')}: artifacts may hold only regular files and directories`,
        );
      case '3':
      case '4':
      case '6': {
        const kind = typeCode === '3' ? 'character device' : typeCode === '4' ? 'block device' : 'FIFO';
        throw new ArtifactError(
          'ARTIFACT_SPECIAL_FILE',
          `${kind} ${JSON.stringify(name)}: artifacts may hold only regular files and directories`,
        );
      }
      case '5': {
        const path = safeEntryPath(name);
        await reader.skip(size + padding(size), what);
        yield { kind: 'directory', path, index: count };
        break;
      }
      case '0':
      case '\0':
      case '7': {
        // node-tar reads a '0' or NUL entry named "x/" as a directory and zeroes its size, while GNU tar
        // skips its declared body (and Python reads a '0' one as a file): reading that body as headers
        // would extract entries those tools never see. No packer writes such an entry, so it is refused.
        if (name.endsWith('/')) {
          throw new ArtifactError(
            'ARTIFACT_UNSAFE_ENTRY',
            `regular file ${JSON.stringify(name)} has a directory name (trailing "/"): tar readers disagree on whether it is a file or a directory`,
          );
        }
        const path = safeEntryPath(name);
        if (path === '') {
          throw new ArtifactError(
            'ARTIFACT_UNSAFE_ENTRY',
            `regular file ${JSON.stringify(name)} (entry ${count}) names the archive root, not a file in it`,
          );
        }
        const bodyStart = reader.position;
        yield { kind: 'file', path, size, index: count, body: reader.pieces(size, what) };
        // Skip whatever of the body the consumer left unread, so the stream stays aligned.
        await reader.skip(bodyStart + size - reader.position + padding(size), what);
        break;
      }
      default:
        throw new ArtifactError(
          'ARTIFACT_SPECIAL_FILE',
          `entry ${JSON.stringify(name)} has unsupported tar type ${JSON.stringify(typeCode)}`,
        );
    }
  }
  await reader.drain();
}
