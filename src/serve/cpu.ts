import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Where to read the cgroup CPU quota (overridable for tests). */
export interface CgroupPaths {
  /** cgroup v2 `cpu.max` ("max 100000" or "150000 100000"). */
  readonly v2Max: string;
  /** cgroup v1 `cpu.cfs_quota_us` (-1 = unlimited). */
  readonly v1Quota: string;
  /** cgroup v1 `cpu.cfs_period_us`. */
  readonly v1Period: string;
}

const DEFAULT_CGROUP_PATHS: CgroupPaths = {
  v2Max: '/sys/fs/cgroup/cpu.max',
  v1Quota: '/sys/fs/cgroup/cpu/cpu.cfs_quota_us',
  v1Period: '/sys/fs/cgroup/cpu/cpu.cfs_period_us',
};

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Parses a cgroup quota/period pair into a CPU count, or undefined when unlimited or unreadable.
 * Fractional quotas round up (a 0.5-CPU Fargate task still gets one thread).
 */
export function parseCpuQuota(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return Math.max(1, Math.ceil(q / p));
}

/**
 * CPUs this process may use: the cgroup quota (v2, then v1) capped by the visible cores.
 * onnxruntime sizes its thread pools from the host's core count, not the container's quota,
 * which oversubscribes a Fargate task; every thread count in the service derives from this.
 */
export function availableCpus(paths: CgroupPaths = DEFAULT_CGROUP_PATHS): number {
  const cores = availableParallelism();
  const v2 = readText(paths.v2Max);
  let quota: number | undefined;
  if (v2 !== undefined) {
    const [q, p] = v2.split(/\s+/);
    quota = parseCpuQuota(q, p ?? '100000');
  } else {
    quota = parseCpuQuota(readText(paths.v1Quota), readText(paths.v1Period));
  }
  return quota === undefined ? cores : Math.min(cores, quota);
}

/** Worker and intra-op thread counts for a CPU budget. */
export interface ThreadPlan {
  readonly workers: number;
  readonly intraOpThreads: number;
  /**
   * Threads for a run that starts while every other worker is idle: a lone request may use the
   * whole budget (raw onnxruntime's latency) instead of one worker's share.
   */
  readonly idleIntraOpThreads: number;
}

/**
 * Splits a CPU budget between inference workers and onnxruntime intra-op threads.
 *
 * Default: one worker per CPU (up to 4) with the remaining CPUs spread as intra-op threads, so
 * workers × threads never exceeds the budget (oversubscription costs more than it gains).
 */
export function planThreads(
  cpus: number,
  workers?: number,
  intraOpThreads?: number,
  idleIntraOpThreads?: number,
): ThreadPlan {
  const budget = Math.max(1, Math.floor(cpus));
  const w = workers ?? Math.min(budget, 4);
  const t = intraOpThreads ?? Math.max(1, Math.floor(budget / w));
  return { workers: w, intraOpThreads: t, idleIntraOpThreads: Math.max(t, idleIntraOpThreads ?? budget) };
}
