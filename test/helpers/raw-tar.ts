import { gzipSync } from 'node:zlib';

/** One hand-made tar entry: any type flag, any name, any declared size. */
export interface RawTarEntry {
  readonly name: string;
  /** The ustar type flag character: '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' directory, '6' FIFO, 'x' pax... */
  readonly type?: string;
  readonly body?: Buffer | string;
  /** Declared size when it should differ from the body (e.g. to fake a huge file). */
  readonly size?: number;
  /** The size field's raw bytes as latin1 text (up to 12), to write one no packer would, e.g. not octal. */
  readonly sizeField?: string;
  readonly linkname?: string;
  readonly mode?: number;
}

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar field too long: ${value}`);
  bytes.copy(block, offset);
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  writeString(block, offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
}

/**
 * A 512-byte ustar header with a correct checksum. Written by hand (not node-tar) so tests can
 * express entries a well-behaved packer refuses to make: links, devices, FIFOs, absolute and `..` paths.
 */
export function rawTarHeader(entry: RawTarEntry): Buffer {
  const block = Buffer.alloc(512);
  const size = entry.size ?? (entry.body === undefined ? 0 : Buffer.byteLength(entry.body));
  writeString(block, 0, 100, entry.name);
  writeOctal(block, 100, 8, entry.mode ?? 0o644);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  if (entry.sizeField === undefined) writeOctal(block, 124, 12, size);
  else Buffer.from(entry.sizeField, 'latin1').copy(block, 124, 0, 12);
  writeOctal(block, 136, 12, 0);
  writeString(block, 156, 1, entry.type ?? '0');
  writeString(block, 157, 100, entry.linkname ?? '');
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  // Checksum: sum of all header bytes with the checksum field itself counted as spaces.
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  writeString(block, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return block;
}

/** A tar stream of the given entries, each body padded to 512 bytes, with (by default) the two zero end blocks. */
export function rawTar(entries: readonly RawTarEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(rawTarHeader(entry));
    if (entry.body !== undefined) {
      const body = Buffer.from(entry.body);
      parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  if (options.end ?? true) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** gzip of {@link rawTar}. */
export function rawTarGz(entries: readonly RawTarEntry[], options: { end?: boolean } = {}): Buffer {
  return gzipSync(rawTar(entries, options));
}
