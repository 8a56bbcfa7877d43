import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join, relative } from 'node:path';

/**
 * Every path under `root` with its kind, mode and content hash, sorted: two equal snapshots mean
 * nothing was added, removed or changed (used to prove a rejected archive wrote nothing).
 */
export async function snapshotDir(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const full = join(dir, name);
      const rel = relative(root, full);
      const info = await lstat(full);
      if (info.isDirectory()) {
        out.push(`d ${rel} ${(info.mode & 0o777).toString(8)}`);
        await walk(full);
      } else if (info.isSymbolicLink()) {
        out.push(`l ${rel} -> ${await readlink(full)}`);
      } else if (info.isFile()) {
        const hash = createHash('sha256')
          .update(await readFile(full))
          .digest('hex');
        out.push(`f ${rel} ${(info.mode & 0o777).toString(8)} ${hash}`);
      } else {
        out.push(`? ${rel}`);
      }
    }
  };
  await walk(root);
  return out;
}
