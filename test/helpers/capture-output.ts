import { vi } from 'vitest';

/** What the code under test wrote to the process's stdout and stderr so far. */
export interface CapturedOutput {
  stdout: string;
  stderr: string;
}

/** Captures writes to process.stdout and process.stderr until `vi.restoreAllMocks()`. */
export function captureOutput(): CapturedOutput {
  const output: CapturedOutput = { stdout: '', stderr: '' };
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    output.stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    output.stderr += String(chunk);
    return true;
  });
  return output;
}
