/**
 * Names that cross a boundary between infrastructure (CDK) and runtime code.
 *
 * Infra and runtime both import this module; nobody retypes these strings. It holds
 * data only (no runtime imports) so that the CDK app can depend on it freely.
 */

/** File names inside a model artifact. */
export const ARTIFACT = {
  /** The tarball SageMaker writes and the rollout watches for. */
  tarball: 'model.tar.gz',
  /** The ONNX graph inside the tarball (required). */
  onnx: 'model.onnx',
  /** The Slipway manifest inside the tarball (optional for models brought from elsewhere). */
  manifest: 'manifest.json',
} as const;

/** Environment variable keys read by the inference service, the Lambda and the CLI. */
export const ENV = {
  /** Which model the inference service serves: `s3://`, `file://`, or a prefix ending in `/`. */
  modelUri: 'MODEL_URI',
  /** Human-readable model version pinned by a rollout (informational; the URI is authoritative). */
  modelVersion: 'MODEL_VERSION',
  /** HTTP port of the inference service (default 8080). */
  port: 'PORT',
  /** SageMaker's port override; wins over PORT when set. */
  sagemakerPort: 'SAGEMAKER_BIND_TO_PORT',
  /** Number of inference workers (threads) in the pool. */
  workers: 'SLIPWAY_WORKERS',
  /** onnxruntime intra-op threads per worker. */
  intraOpThreads: 'SLIPWAY_INTRA_OP_THREADS',
  /** onnxruntime threads a run may use when every other worker is idle (a second session per worker). */
  idleIntraOpThreads: 'SLIPWAY_IDLE_INTRA_OP_THREADS',
  /** Nice value of the inference worker threads (Linux); 0 keeps them at the event loop's priority. */
  workerNice: 'SLIPWAY_WORKER_NICE',
  /** Maximum dynamic batch size (1 disables batching). */
  maxBatchSize: 'SLIPWAY_MAX_BATCH_SIZE',
  /** Maximum time in milliseconds a request waits for a batch to fill. */
  maxBatchDelayMs: 'SLIPWAY_MAX_BATCH_DELAY_MS',
  /** Maximum request body in bytes. */
  bodyLimit: 'SLIPWAY_BODY_LIMIT',
  /** Most input bytes that may wait for an inference worker (503 above it). */
  maxQueuedBytes: 'SLIPWAY_MAX_QUEUED_BYTES',
  /** Custom S3 endpoint (s3rver, MinIO, LocalStack). */
  s3Endpoint: 'SLIPWAY_S3_ENDPOINT',
  /** Lambda: ECS cluster name or ARN of the inference service. */
  cluster: 'SLIPWAY_CLUSTER',
  /** Lambda: ECS service name of the inference service. */
  service: 'SLIPWAY_SERVICE',
  /** Lambda: name of the models bucket the rollout accepts events from. */
  modelsBucket: 'SLIPWAY_MODELS_BUCKET',
  /** Lambda: name of the container in the task definition that serves the model. */
  container: 'SLIPWAY_CONTAINER',
  /** ETag of the pinned model object (lets the server fetch with If-Match on unversioned buckets). */
  modelEtag: 'SLIPWAY_MODEL_ETAG',
  /** S3 sequencer of the event that pinned the model (orders events for the same key). */
  modelSequencer: 'SLIPWAY_MODEL_SEQUENCER',
  /** Time of the S3 event that pinned the model (orders events across keys). */
  modelEventTime: 'SLIPWAY_MODEL_EVENT_TIME',
  /** Inference service: how long SIGTERM waits for in-flight requests before exiting (ms). */
  shutdownTimeoutMs: 'SLIPWAY_SHUTDOWN_TIMEOUT_MS',
  /** Inference service: the model name clients use in v2 URLs when the artifact has no manifest. */
  modelName: 'SLIPWAY_MODEL_NAME',
  /** Training: root of the SageMaker job layout (default `/opt/ml`; the local runner points it at a job dir). */
  jobRoot: 'SLIPWAY_JOB_ROOT',
  /** Training image: the entrypoint `train` runs (default: the MNIST example in dist). */
  trainEntry: 'SLIPWAY_TRAIN_ENTRY',
  /** Training: the job's name, set by SageMaker in the training container (and by the local runner). */
  trainingJobName: 'TRAINING_JOB_NAME',
} as const;

/**
 * Tags the rollout writes on the task-definition revisions it registers. The rollout reads them
 * back to tell a revision the service ran from one that was only registered, and infra grants
 * tagging after registration for the deployment tag alone.
 */
export const REVISION_TAGS = {
  /** Revision number (same family) the service was on when this revision was registered. */
  base: 'slipway:base-revision',
  /** Id of the ECS deployment that switched the service to this revision. */
  deployment: 'slipway:deployment',
} as const;

/**
 * How many times Lambda retries a rollout invocation that failed before the event goes to the
 * failure queue (infra sets it; `slipway deploy --wait` stops waiting after that many failures
 * and the first).
 */
export const ROLLOUT_RETRY_ATTEMPTS = 2;

/** Default port of the inference service and of the local load balancer. */
export const DEFAULT_PORT = 8080;

/** The name of the inference container in the ECS task definition. */
export const INFERENCE_CONTAINER_NAME = 'inference';

/** Roles of the buckets (the models bucket plays the role of `sagemaker-shared-models`). */
export const BUCKET_ROLES = {
  data: 'data',
  models: 'models',
  docs: 'docs',
} as const;

/** Shape of an EventBridge event pattern (the subset Slipway uses). */
export interface ModelUploadEventPattern {
  readonly source: readonly string[];
  readonly 'detail-type': readonly string[];
  readonly detail: {
    readonly bucket: { readonly name: readonly string[] };
    readonly object: { readonly key: readonly [{ readonly suffix: string }] };
  };
}

/**
 * The EventBridge rule pattern that starts a rollout: an S3 "Object Created" event on
 * the models bucket whose key ends in `model.tar.gz`.
 *
 * @example modelUploadEventPattern('acme-models')
 */
export function modelUploadEventPattern(modelsBucket: string): ModelUploadEventPattern {
  return {
    source: ['aws.s3'],
    'detail-type': ['Object Created'],
    detail: {
      bucket: { name: [modelsBucket] },
      object: { key: [{ suffix: ARTIFACT.tarball }] },
    },
  };
}

/**
 * The one prefix of the models bucket the SageMaker notebook may write to. The rollout fires on
 * a key ending in `model.tar.gz` anywhere in the bucket, so the notebook is also denied every such
 * key: nothing it writes can start a rollout.
 */
export const NOTEBOOK_SCRATCH_PREFIX = 'notebook-scratch/';

/** CloudFormation output keys of the deployed stack, read by `slipway --cloud`. */
export const STACK_OUTPUTS = {
  dataBucket: 'DataBucketName',
  modelsBucket: 'ModelsBucketName',
  docsBucket: 'DocsBucketName',
  docsDistributionId: 'DocsDistributionId',
  cluster: 'ClusterName',
  service: 'ServiceName',
  loadBalancerUrl: 'LoadBalancerUrl',
  trainingRoleArn: 'TrainingRoleArn',
  trainingImageUri: 'TrainingImageUri',
  trainingSubnets: 'TrainingSubnetIds',
  trainingSecurityGroup: 'TrainingSecurityGroupId',
  fileSystemId: 'FileSystemId',
  alarmTopicArn: 'AlarmTopicArn',
  /** The rollout function's log group: `deploy --cloud --wait` reads each upload's outcome there. */
  rolloutLogGroup: 'RolloutLogGroupName',
  /** The rollout function: deploy.yml sends it a restore request after a failed deploy. */
  rolloutFunction: 'RolloutFunctionName',
} as const;

/** Default name of the CloudFormation stack. */
export const DEFAULT_STACK_NAME = 'Slipway';

/**
 * The value of MODEL_URI that means "no model deployed yet": the service starts, reports
 * ready (so the first deployment and its health checks succeed before any model exists)
 * and answers 503 to predictions until a rollout pins a real model.
 */
export const NO_MODEL_URI = 'none';

/** ECR repository names of the two images. */
export const IMAGE_REPOSITORIES = {
  inference: 'slipway-inference',
  training: 'slipway-training',
} as const;

/** IAM role names assumed by GitHub Actions through OIDC, one per workflow purpose. */
export const GITHUB_OIDC_ROLES = {
  deployInfra: 'slipway-github-deploy-infra',
  publishImages: 'slipway-github-publish-images',
  publishDocs: 'slipway-github-publish-docs',
  launchTraining: 'slipway-github-launch-training',
  restoreModel: 'slipway-github-restore-model',
} as const;

/**
 * The workflow files (in `.github/workflows/`) that assume each GitHub OIDC role. With
 * `githubOidcSubject: workflow` a role trusts runs of these files only.
 */
export const GITHUB_ROLE_WORKFLOWS: Readonly<Record<keyof typeof GITHUB_OIDC_ROLES, readonly string[]>> = {
  deployInfra: ['deploy.yml'],
  publishImages: ['deploy.yml'],
  publishDocs: ['docs.yml'],
  launchTraining: ['train.yml'],
  restoreModel: ['deploy.yml'],
};

/**
 * What keeps one stage's account-wide names (IAM roles, ECR repositories) apart from another's:
 * nothing for the default stack name, so deployed stacks keep their names; `-<stackname>`
 * (lower case) for any other.
 *
 * @example stageSuffix('SlipwayStaging') // '-slipwaystaging'
 */
export function stageSuffix(stackName: string): string {
  return stackName === DEFAULT_STACK_NAME ? '' : `-${stackName.toLowerCase()}`;
}

/** ECR repository name of an image for the stage of `stackName`. */
export function imageRepositoryName(
  image: keyof typeof IMAGE_REPOSITORIES,
  stackName: string = DEFAULT_STACK_NAME,
): string {
  return `${IMAGE_REPOSITORIES[image]}${stageSuffix(stackName)}`;
}

/** IAM role name of a GitHub OIDC role for the stage of `stackName`. */
export function githubRoleName(
  role: keyof typeof GITHUB_OIDC_ROLES,
  stackName: string = DEFAULT_STACK_NAME,
): string {
  return `${GITHUB_OIDC_ROLES[role]}${stageSuffix(stackName)}`;
}
