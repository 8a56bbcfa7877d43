import { runLocalTrainingJob } from '../train/local-runner.ts';
import type { TrainingRunner } from './bootstrap.ts';

/** Runs a training job through the local SageMaker-contract runner of src/train. */
export const localTrainingRunner: TrainingRunner = async (run) => {
  let lastPhase = '';
  const result = await runLocalTrainingJob({
    jobName: run.jobName,
    channels: run.channels,
    output: run.output,
    hyperparameters: run.hyperparameters,
    store: run.store,
    workDir: run.workDir,
    env: run.env,
    signal: run.signal,
    ...(run.onStart ? { onStart: run.onStart } : {}),
    onLog: (line) => run.log(line),
    onProgress: (p) => {
      // Phases only: per-chunk byte counts would flood the twin's log.
      if (p.phase !== lastPhase) run.log(`phase ${p.phase}`);
      lastPhase = p.phase;
    },
  });
  return { modelUri: result.modelUri };
};
