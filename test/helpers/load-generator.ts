import { MODEL_VERSION_HEADER } from '../../src/local/load-balancer.ts';

/** What one request of {@link loadGenerator} got: its status (0 when it failed outright) and model version. */
export interface LoadOutcome {
  readonly status: number;
  readonly version: string | null;
}

/**
 * Sends requests back to back from three clients until stopped, recording the status of each and
 * the model version that answered it (the load balancer's header).
 */
export function loadGenerator(send: () => Promise<Response>): {
  count: () => number;
  stop: () => Promise<LoadOutcome[]>;
} {
  const results: LoadOutcome[] = [];
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      try {
        const res = await send();
        await res.arrayBuffer();
        results.push({ status: res.status, version: res.headers.get(MODEL_VERSION_HEADER) });
      } catch {
        results.push({ status: 0, version: null });
      }
    }
  };
  const workers = [worker(), worker(), worker()];
  return {
    count: () => results.length,
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return results;
    },
  };
}
