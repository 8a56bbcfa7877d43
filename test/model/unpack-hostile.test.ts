import { randomBytes, createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ArtifactError, unpackModel } from '../../src/model/index.ts';
import type { ArtifactErrorCode, UnpackLimits } from '../../src/model/index.ts';
import { StoreError } from '../../src/store/index.ts';
import { conformanceModel } from '../helpers/conformance.ts';
import { snapshotDir } from '../helpers/dir-snapshot.ts';
import { rawTar, rawTarGz } from '../helpers/raw-tar.ts';
import type { RawTarEntry } from '../helpers/raw-tar.ts';

let onnx: Buffer;
let sandbox: string;
let parentDir: string;
let archives: string;
let before: string[];

function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function manifestFor(model: Buffer, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    name: 'expand',
    version: '1',
    createdAt: '2026-01-02T03:04:05Z',
    inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 3, 1] }],
    outputs: [{ name: 'Y', datatype: 'FP32', shape: [1, 3, 1] }],
    sha256: sha256(model),
    ...overrides,
  });
}

function pax(records: Record<string, string>): string {
  return Object.entries(records)
    .map(([key, value]) => {
      const body = ` ${key}=${value}\n`;
      let length = body.length + 1;
      while (`${length}${body}`.length !== length) length++;
      return `${length}${body}`;
    })
    .join('');
}

beforeAll(async () => {
  onnx = await readFile(conformanceModel('simple/test_expand_shape_model1/model.onnx'));
});

beforeEach(async () => {
  // The sandbox is the "outside world" an archive might try to write to; parentDir is where
  // unpackModel creates its private directory.
  sandbox = await mkdtemp(join(tmpdir(), 'slipway-hostile-'));
  parentDir = join(sandbox, 'extract');
  await mkdir(parentDir);
  await writeFile(join(sandbox, 'sentinel.txt'), 'do not touch');
  archives = await mkdtemp(join(tmpdir(), 'slipway-archives-'));
  before = await snapshotDir(sandbox);
});

afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
  await rm(archives, { recursive: true, force: true });
});

async function expectRejected(
  archive: Buffer,
  code: ArtifactErrorCode,
  options: { limits?: Partial<UnpackLimits>; message?: RegExp; verifyLoads?: boolean } = {},
): Promise<ArtifactError> {
  const file = join(archives, 'model.tar.gz');
  await writeFile(file, archive);
  const error: unknown = await unpackModel(file, {
    parentDir,
    limits: options.limits,
    verifyLoads: options.verifyLoads,
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ArtifactError);
  const artifactError = error as ArtifactError;
  expect(artifactError.code).toBe(code);
  if (options.message) expect(artifactError.message).toMatch(options.message);
  // Nothing escaped and nothing was left behind: the sandbox is exactly as before.
  expect(await snapshotDir(sandbox)).toEqual(before);
  expect(await readdir(parentDir)).toEqual([]);
  return artifactError;
}

const model = (): RawTarEntry => ({ name: 'model.onnx', body: onnx });

describe('unpackModel rejects hostile paths', () => {
  it.each(['../escaped.txt', '../../escaped.txt', 'a/../../escaped.txt', './../escaped.txt'])(
    'rejects the parent-directory path %s',
    async (name) => {
      await expectRejected(rawTarGz([model(), { name, body: 'pwned' }]), 'ARTIFACT_UNSAFE_ENTRY', {
        message: /contains "\.\."/,
      });
    },
  );

  it('rejects an absolute path even when it points into the sandbox', async () => {
    await expectRejected(
      rawTarGz([model(), { name: join(sandbox, 'absolute.txt'), body: 'pwned' }]),
      'ARTIFACT_UNSAFE_ENTRY',
      { message: /absolute path/ },
    );
  });

  it('rejects a name with a backslash', async () => {
    await expectRejected(
      rawTarGz([model(), { name: '..\\escaped.txt', body: 'x' }]),
      'ARTIFACT_UNSAFE_ENTRY',
    );
  });

  it('rejects a pax header that rewrites an innocent name into a parent path', async () => {
    const archive = rawTarGz([
      model(),
      { name: 'PaxHeader/innocent', type: 'x', body: pax({ path: '../escaped.txt' }) },
      { name: 'innocent', body: 'pwned' },
    ]);
    await expectRejected(archive, 'ARTIFACT_UNSAFE_ENTRY', { message: /escaped\.txt/ });
  });

  it('rejects a GNU long name that is a parent path', async () => {
    const archive = rawTarGz([
      model(),
      { name: '././@LongLink', type: 'L', body: '../escaped.txt\0' },
      { name: 'innocent', body: 'pwned' },
    ]);
    await expectRejected(archive, 'ARTIFACT_UNSAFE_ENTRY');
  });

  it('rejects the same file twice instead of overwriting the first', async () => {
    await expectRejected(
      rawTarGz([model(), { name: 'model.onnx', body: 'replacement' }]),
      'ARTIFACT_UNSAFE_ENTRY',
      { message: /appears twice/ },
    );
  });

  // node-tar's Header reads a '0' or NUL entry named "x/" as a directory and zeroes its size, but GNU tar
  // skips the declared body: a body read as headers would smuggle in a model that tar never lists.
  it.each([
    ['0', 'its header'],
    ['\0', 'its header'],
    ['7', 'its header'],
    ['0', 'a pax path'],
    ['0', 'a GNU long name'],
  ])(
    'rejects a type %j regular file whose %s ends in "/", not reading its body as entries',
    async (type, how) => {
      const smuggled = rawTar([model()], { end: false });
      const named: RawTarEntry[] =
        how === 'a pax path'
          ? [{ name: 'PaxHeader/notes', type: 'x', body: pax({ path: 'notes/' }) }]
          : how === 'a GNU long name'
            ? [{ name: '././@LongLink', type: 'L', body: 'notes/\0' }]
            : [];
      const archive = rawTarGz([
        ...named,
        { name: how === 'its header' ? 'notes/' : 'notes', type, body: smuggled },
      ]);
      await expectRejected(archive, 'ARTIFACT_UNSAFE_ENTRY', { message: /regular file "notes\/"/ });
    },
  );

  it('rejects a file named with a trailing "/" whose zero body would end the archive before a symlink', async () => {
    const archive = rawTarGz([
      model(),
      { name: 'pad/', body: Buffer.alloc(512) },
      { name: 'evil', type: '2', linkname: '/etc/passwd' },
    ]);
    await expectRejected(archive, 'ARTIFACT_UNSAFE_ENTRY', { message: /"pad\/"/ });
  });

  it('rejects a model.onnx/ file entry naming it, not as a corrupt header further on', async () => {
    await expectRejected(rawTarGz([{ name: 'model.onnx/', body: onnx }]), 'ARTIFACT_UNSAFE_ENTRY', {
      message: /"model\.onnx\/"/,
    });
  });

  it.each(['.', '', './.'])('rejects a regular file named %j, naming it', async (name) => {
    const error = await expectRejected(rawTarGz([model(), { name, body: 'x' }]), 'ARTIFACT_UNSAFE_ENTRY', {
      message: /names the archive root/,
    });
    expect(error.message).toContain(`regular file ${JSON.stringify(name)}`);
  });

  it('rejects an entry nested under a file', async () => {
    await expectRejected(
      rawTarGz([model(), { name: 'model.onnx/inner', body: 'x' }]),
      'ARTIFACT_UNSAFE_ENTRY',
    );
  });
});

// node-tar's pax parser is lenient where GNU tar and Python are not (or are lenient differently): each of
// these archives unpacked to a model.onnx that GNU tar does not list, or to different bytes.
describe('unpackModel rejects pax headers that tar readers read differently', () => {
  const smuggled = (): Buffer => rawTar([model()], { end: false });

  it.each<[string, () => RawTarEntry[], ArtifactErrorCode, RegExp]>([
    [
      'a size that is not decimal (node-tar reads 0x10 as 16, GNU tar takes the header size)',
      () => [
        { name: 'PaxHeader/notes', type: 'x', body: pax({ size: '0x10' }) },
        { name: 'notes', body: Buffer.concat([Buffer.alloc(512, 1), smuggled()]) },
      ],
      'ARTIFACT_TRUNCATED',
      /size "0x10"/,
    ],
    [
      'a path with a newline (node-tar drops the record, GNU tar names the file with it)',
      () => [{ name: 'PaxHeader/model.onnx', type: 'x', body: pax({ path: 'a\nb' }) }, model()],
      'ARTIFACT_UNSAFE_ENTRY',
      /NUL or newline/,
    ],
    [
      'a path with a NUL (node-tar cuts it there, Python keeps it)',
      () => [
        { name: 'PaxHeader/notes', type: 'x', body: pax({ path: 'model.onnx\0junk' }) },
        { name: 'notes', body: onnx },
      ],
      'ARTIFACT_UNSAFE_ENTRY',
      /NUL or newline/,
    ],
    [
      'a record whose length is wrong (node-tar drops it, GNU tar fails)',
      () => [{ name: 'PaxHeader/model.onnx', type: 'x', body: '99 path=notes\n' }, model()],
      'ARTIFACT_TRUNCATED',
      /length "99"/,
    ],
    [
      'a global path (node-tar ignores it, GNU tar renames every later entry)',
      () => [{ name: 'GlobalHead', type: 'g', body: pax({ path: 'notes' }) }, model()],
      'ARTIFACT_UNSAFE_ENTRY',
      /global pax header .* path/,
    ],
    [
      'a GNU sparse file (node-tar writes its map as data under GNUSparseFile.0/, GNU tar expands it)',
      () => [
        model(),
        {
          name: 'PaxHeader/weights.bin',
          type: 'x',
          body: pax({
            'GNU.sparse.major': '1',
            'GNU.sparse.minor': '0',
            'GNU.sparse.name': 'weights.bin',
            'GNU.sparse.realsize': '1048576',
            path: 'GNUSparseFile.0/weights.bin',
          }),
        },
        { name: 'GNUSparseFile.0/weights.bin', body: '1\n1048572\n4\n' },
      ],
      'ARTIFACT_SPECIAL_FILE',
      /sparse/,
    ],
    [
      'a path and a GNU long name for one entry (node-tar takes the later, GNU tar the pax path)',
      () => [
        { name: 'PaxHeader/raw', type: 'x', body: pax({ path: 'notes' }) },
        { name: '././@LongLink', type: 'L', body: 'model.onnx\0' },
        { name: 'raw', body: onnx },
      ],
      'ARTIFACT_UNSAFE_ENTRY',
      /named twice/,
    ],
  ])('rejects %s', async (_what, entries, code, message) => {
    await expectRejected(rawTarGz(entries()), code, { message });
  });
});

describe('unpackModel rejects size fields that tar readers read differently', () => {
  it.each([
    ['00000000000x', 'digits then junk'],
    ['zzzzzzzzzzz', 'no digits'],
    ['\xff'.repeat(12), 'a negative base-256 number'],
  ])(
    'rejects the size field %j (%s), which node-tar reads as 0 and GNU tar and Python reject',
    async (sizeField) => {
      const archive = rawTarGz([{ name: 'notes', sizeField, body: rawTar([model()], { end: false }) }]);
      await expectRejected(archive, 'ARTIFACT_TRUNCATED', { message: /"notes".*size field/ });
    },
  );
});

describe('unpackModel rejects links and special files', () => {
  it('rejects a symlink to a directory outside, before anything is written through it', async () => {
    const archive = rawTarGz([
      model(),
      { name: 'link', type: '2', linkname: sandbox },
      { name: 'link/escaped.txt', body: 'pwned' },
    ]);
    await expectRejected(archive, 'ARTIFACT_LINK', { message: /symbolic link "link"/ });
  });

  it('rejects a symlink standing in for model.onnx', async () => {
    await expectRejected(
      rawTarGz([{ name: 'model.onnx', type: '2', linkname: '/etc/passwd' }]),
      'ARTIFACT_LINK',
    );
  });

  it('rejects a hard link', async () => {
    await expectRejected(
      rawTarGz([model(), { name: 'copy.onnx', type: '1', linkname: join(sandbox, 'sentinel.txt') }]),
      'ARTIFACT_LINK',
      { message: /hard link/ },
    );
  });

  it.each([
    ['3', 'character device'],
    ['4', 'block device'],
    ['6', 'FIFO'],
  ])('rejects a type %s entry (%s)', async (type, kind) => {
    await expectRejected(rawTarGz([model(), { name: 'dev', type }]), 'ARTIFACT_SPECIAL_FILE', {
      message: new RegExp(kind),
    });
  });

  it('rejects an unknown entry type rather than skipping it', async () => {
    await expectRejected(
      rawTarGz([model(), { name: 'sparse', type: 'S', body: 'x' }]),
      'ARTIFACT_SPECIAL_FILE',
    );
  });
});

describe('unpackModel enforces size caps while streaming', () => {
  it('stops a gzip bomb on the compression ratio', async () => {
    const archive = rawTarGz([model(), { name: 'zeros.bin', body: Buffer.alloc(32 * 1024 * 1024) }]);
    expect(archive.length).toBeLessThan(64 * 1024);
    await expectRejected(archive, 'ARTIFACT_RATIO', { message: /compression ratio/ });
  });

  it('caps the number of entries', async () => {
    const entries = Array.from({ length: 30 }, (_, i) => ({ name: `f${i}.txt`, body: 'x' }));
    await expectRejected(rawTarGz([model(), ...entries]), 'ARTIFACT_TOO_MANY_ENTRIES', {
      limits: { maxEntries: 20 },
    });
  });

  it('caps the total uncompressed bytes', async () => {
    const archive = rawTarGz([model(), { name: 'weights.bin', body: randomBytes(2 * 1024 * 1024) }]);
    await expectRejected(archive, 'ARTIFACT_TOO_LARGE', { limits: { maxTotalBytes: 1024 * 1024 } });
  });

  it('rejects a header that declares more than the default 4 GiB cap before reading its body', async () => {
    const archive = rawTarGz([model(), { name: 'huge.bin', size: 5 * 1024 ** 3 }], { end: false });
    await expectRejected(archive, 'ARTIFACT_TOO_LARGE', { message: /declare more than/ });
  });

  it('caps the manifest size', async () => {
    const archive = rawTarGz([model(), { name: 'manifest.json', body: ' '.repeat(4096) }]);
    await expectRejected(archive, 'ARTIFACT_TOO_LARGE', { limits: { maxManifestBytes: 1024 } });
  });
});

describe('unpackModel tells broken files apart', () => {
  it('reports a truncated gzip stream', async () => {
    const archive = rawTarGz([model(), { name: 'weights.bin', body: randomBytes(256 * 1024) }]);
    await expectRejected(archive.subarray(0, archive.length / 2), 'ARTIFACT_TRUNCATED');
  });

  it('reports a tar that ends in the middle of an entry', async () => {
    const tar = rawTar([model(), { name: 'weights.bin', size: 10_000, body: 'short' }], { end: false });
    await expectRejected(gzipSync(tar.subarray(0, tar.length - 512)), 'ARTIFACT_TRUNCATED', {
      message: /weights\.bin/,
    });
  });

  it('reports a corrupt tar header', async () => {
    const tar = rawTar([model()]);
    tar[0] = 'n'.charCodeAt(0); // name changes, checksum no longer matches
    await expectRejected(gzipSync(tar), 'ARTIFACT_TRUNCATED', { message: /checksum/ });
  });

  it('reports an uncompressed tar as not gzip', async () => {
    await expectRejected(rawTar([model()]), 'ARTIFACT_NOT_GZIP');
  });

  it('reports a zip file as not gzip', async () => {
    await expectRejected(Buffer.from('PK\x03\x04 this is a zip'), 'ARTIFACT_NOT_GZIP');
  });

  it('reports a zero-byte file as empty', async () => {
    await expectRejected(Buffer.alloc(0), 'ARTIFACT_EMPTY', { message: /0 bytes/ });
  });

  it('reports a tarball with no entries as empty', async () => {
    await expectRejected(gzipSync(Buffer.alloc(1024)), 'ARTIFACT_EMPTY', { message: /no entries/ });
  });

  it('reports gzip of nothing as empty', async () => {
    await expectRejected(gzipSync(Buffer.alloc(0)), 'ARTIFACT_EMPTY');
  });
});

describe('unpackModel checks the model', () => {
  it('requires model.onnx at the root', async () => {
    await expectRejected(
      rawTarGz([
        { name: 'sub/model.onnx', body: onnx },
        { name: 'README', body: 'hi' },
      ]),
      'ARTIFACT_NO_ONNX',
      { message: /sub\/model\.onnx/ },
    );
  });

  it('rejects a model.onnx that is a directory', async () => {
    await expectRejected(rawTarGz([{ name: 'model.onnx/', type: '5' }]), 'ARTIFACT_NO_ONNX');
  });

  it('rejects a model.onnx that is not ONNX when there is no manifest', async () => {
    await expectRejected(
      rawTarGz([{ name: 'model.onnx', body: 'definitely not protobuf' }]),
      'ARTIFACT_ONNX_INVALID',
    );
  });

  it('rejects a model onnxruntime cannot load when asked to verify', async () => {
    const garbage = Buffer.from('\x08\x07garbage that is not a model');
    const archive = rawTarGz([
      { name: 'model.onnx', body: garbage },
      { name: 'manifest.json', body: manifestFor(garbage) },
    ]);
    await expectRejected(archive, 'ARTIFACT_ONNX_INVALID', { verifyLoads: true, message: /onnxruntime/ });
  });

  it('rejects a manifest that is not JSON', async () => {
    await expectRejected(
      rawTarGz([model(), { name: 'manifest.json', body: '{ name: ' }]),
      'ARTIFACT_BAD_MANIFEST',
      {
        message: /not JSON/,
      },
    );
  });

  it('rejects a manifest that fails the schema, naming the field and value', async () => {
    const manifest = manifestFor(onnx, { inputs: [{ name: 'X', datatype: 'FLOAT', shape: [1] }] });
    await expectRejected(
      rawTarGz([model(), { name: 'manifest.json', body: manifest }]),
      'ARTIFACT_BAD_MANIFEST',
      {
        message: /manifest\.inputs\[0\]\.datatype: expected one of BOOL, .*got "FLOAT"/,
      },
    );
  });

  it('rejects a manifest that describes another model, naming every disagreement', async () => {
    const manifest = manifestFor(onnx, {
      inputs: [{ name: 'pixels', datatype: 'INT8', shape: [-1, 784] }],
      outputs: [
        { name: 'Y', datatype: 'FP16', shape: [1, 3, 1] },
        { name: 'scores', datatype: 'FP32', shape: [-1, 10] },
      ],
      labels: ['a', 'b', 'c', 'd'],
    });
    const error = await expectRejected(
      rawTarGz([model(), { name: 'manifest.json', body: manifest }]),
      'ARTIFACT_SIGNATURE_MISMATCH',
    );
    expect(error.message.split('; ')).toEqual([
      "manifest.json does not describe model.onnx: input 'pixels' is not in the graph (its inputs: X, shape)",
      "the graph's input 'X' is missing from the manifest",
      "the graph's input 'shape' is missing from the manifest",
      "output 'Y' is FP16 but the graph's is FP32",
      "output 'scores' is not in the graph (its outputs: Y)",
      "4 labels, but no output's last dimension is 4 (Y [1,3,1], scores [-1,10])",
    ]);
  });

  it('rejects a manifest whose shape drops a dimension the graph fixes', async () => {
    const manifest = manifestFor(onnx, { outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 3, 1] }] });
    await expectRejected(
      rawTarGz([model(), { name: 'manifest.json', body: manifest }]),
      'ARTIFACT_SIGNATURE_MISMATCH',
      { message: /output 'Y' has shape \[-1,3,1\] but the graph fixes dim 0 at 1/ },
    );
  });

  it('rejects a checksum mismatch', async () => {
    const manifest = manifestFor(Buffer.from('some other model'));
    await expectRejected(
      rawTarGz([model(), { name: 'manifest.json', body: manifest }]),
      'ARTIFACT_CHECKSUM',
      {
        message: /SHA-256/,
      },
    );
  });
});

describe('unpackModel cleans up after source failures', () => {
  it('wraps a failing source stream as ARTIFACT_IO and removes the directory', async () => {
    const good = rawTarGz([model(), { name: 'weights.bin', body: randomBytes(128 * 1024) }]);
    const source = Readable.from(
      (async function* () {
        yield good.subarray(0, 1000);
        await Promise.resolve();
        throw new Error('connection reset');
      })(),
    );
    const error: unknown = await unpackModel(source, { parentDir }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ArtifactError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_IO');
    expect((error as ArtifactError).message).toMatch(/connection reset/);
    expect(await readdir(parentDir)).toEqual([]);
  });

  it('passes a StoreError from the source through unchanged', async () => {
    const source = Readable.from(
      (async function* () {
        yield Buffer.from([0x1f, 0x8b]);
        await Promise.resolve();
        throw new StoreError('STORE_IO', 's3://b/k: socket hang up');
      })(),
    );
    const error: unknown = await unpackModel(source, { parentDir }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StoreError);
    expect(await readdir(parentDir)).toEqual([]);
  });
});

describe('unpackModel reports environment problems', () => {
  it('reports a missing parent directory as ARTIFACT_IO and destroys the unread source stream', async () => {
    const source = Readable.from([rawTarGz([model()])]);
    const error: unknown = await unpackModel(source, { parentDir: join(sandbox, 'does-not-exist') }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ArtifactError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_IO');
    expect((error as ArtifactError).message).toMatch(/does-not-exist/);
    expect(source.destroyed).toBe(true);
  });

  it('reports a missing artifact file as ARTIFACT_IO', async () => {
    await expect(unpackModel(join(archives, 'missing.tar.gz'), { parentDir })).rejects.toMatchObject({
      code: 'ARTIFACT_IO',
    });
    expect(await readdir(parentDir)).toEqual([]);
  });
});

describe('unpackModel validates its options', () => {
  it('rejects a negative or non-numeric limit as a usage error before touching the disk', async () => {
    await expect(
      unpackModel(join(archives, 'x.tar.gz'), { parentDir, limits: { maxEntries: -1 } }),
    ).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/maxEntries/) as unknown });
    expect(await readdir(parentDir)).toEqual([]);
  });
});
