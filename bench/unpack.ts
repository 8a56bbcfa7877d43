/**
 * Benchmark: extract a ~200 MiB model.tar.gz with unpackModel and compare peak RSS with the
 * artifact size. Streaming extraction should keep the ratio far below 1.
 *
 * Run: npm run bench:unpack  (or npx tsx bench/unpack.ts [sizeMiB])
 *
 * The extraction runs in a fresh child process so its maxRSS covers nothing but the unpack.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createManifest, packModel, sha256File, unpackModel } from '../src/model/index.ts';

const MiB = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  for (let written = 0; written < bytes; written += MiB) {
    if (!out.write(randomBytes(Math.min(MiB, bytes - written)))) {
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
  }
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

interface ChildResult {
  baselineRss: number;
  peakRss: number;
  maxRss: number;
  seconds: number;
  samples: number;
}

/** Child mode: unpack one artifact, sampling RSS every 2 ms, and print the figures as JSON. */
async function child(tarball: string, parentDir: string): Promise<void> {
  const baselineRss = process.memoryUsage().rss;
  let peakRss = baselineRss;
  let samples = 0;
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    samples++;
  }, 2);
  const started = process.hrtime.bigint();
  const model = await unpackModel(tarball, { parentDir });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(timer);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  await rm(model.dir, { recursive: true, force: true });
  const result: ChildResult = {
    baselineRss,
    peakRss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    seconds,
    samples,
  };
  process.stdout.write(JSON.stringify(result));
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 200);
  const out = join(here, 'out');
  await mkdir(out, { recursive: true });
  const work = await mkdtemp(join(out, 'unpack-'));
  try {
    const modelDir = join(work, 'model');
    await mkdir(modelDir);
    const onnxPath = join(modelDir, 'model.onnx');
    console.log(`generating a ${sizeMiB} MiB model.onnx of random (incompressible) bytes...`);
    await writeRandomFile(onnxPath, sizeMiB * MiB);
    // A manifest carries the signature, so the unpacker need not parse this fake graph.
    const manifest = createManifest({
      name: 'bench',
      version: '1',
      sha256: await sha256File(onnxPath),
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }],
    });
    await writeFile(join(modelDir, 'manifest.json'), JSON.stringify(manifest));
    const tarball = join(work, 'model.tar.gz');
    const packed = await packModel(modelDir, tarball);
    await rm(modelDir, { recursive: true });
    const extractDir = join(work, 'extract');
    await mkdir(extractDir);

    const output = execFileSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', tarball, extractDir],
      { encoding: 'utf8', maxBuffer: MiB },
    );
    const result = JSON.parse(output) as ChildResult;
    const artifact = (await stat(tarball)).size;
    const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
    console.log(`artifact:            ${mib(artifact)} (packed ${mib(packed.bytes)})`);
    console.log(
      `extract time:        ${result.seconds.toFixed(2)} s (${(artifact / MiB / result.seconds).toFixed(0)} MiB/s)`,
    );
    console.log(`baseline RSS:        ${mib(result.baselineRss)} (process before unpacking)`);
    console.log(`peak RSS (sampled):  ${mib(result.peakRss)} over ${result.samples} samples`);
    console.log(`maxRSS (kernel):     ${mib(result.maxRss)}`);
    console.log(`peak RSS / artifact: ${(result.peakRss / artifact).toFixed(3)}`);
    console.log(`maxRSS / artifact:   ${(result.maxRss / artifact).toFixed(3)}`);
    console.log(`growth / artifact:   ${((result.peakRss - result.baselineRss) / artifact).toFixed(3)}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  await child(process.argv[3]!, process.argv[4]!);
} else {
  await main();
}
