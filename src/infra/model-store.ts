import { Aws, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { NOTEBOOK_SCRATCH_PREFIX } from '../names.ts';

/** Properties of `ModelStore`. */
export interface ModelStoreProps {
  /** Name of the training-data bucket. @default `slipway-data-<account>-<region>` */
  readonly dataBucketName?: string;
  /** Name of the models bucket (the role of `sagemaker-shared-models`). @default `sagemaker-shared-models-<account>-<region>` */
  readonly modelsBucketName?: string;
  /** Name of the access-log bucket. @default `slipway-access-logs-<account>-<region>` */
  readonly accessLogsBucketName?: string;
  /** Days a replaced or deleted model version is kept before expiry. @default 30 */
  readonly modelVersionRetentionDays?: number;
  /** Days an object under the notebook's scratch prefix (`NOTEBOOK_SCRATCH_PREFIX`) lives. @default 30 */
  readonly notebookScratchRetentionDays?: number;
  /**
   * Give buckets without a configured name the fixed `<prefix>-<account>-<region>` names; when
   * false, CloudFormation generates unique names from the stack name (another stage's buckets).
   * @default true
   */
  readonly fixedBucketNames?: boolean;
}

/** Bucket name made globally unique from the deploying account and region. */
export function uniqueBucketName(prefix: string): string {
  return `${prefix}-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
}

/** Settings every Slipway bucket shares: private, encrypted, TLS-only, retained on stack deletion. */
export const SECURE_BUCKET_DEFAULTS = {
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  encryption: s3.BucketEncryption.S3_MANAGED,
  enforceSSL: true,
  minimumTLSVersion: 1.2,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
} as const satisfies s3.BucketProps;

/** The S3 side of the pipeline: data bucket, versioned models bucket that emits EventBridge events, access logs. */
export class ModelStore extends Construct {
  /** Training data (read by training jobs). */
  readonly dataBucket: s3.Bucket;
  /** Model artifacts; a new `model.tar.gz` here starts a rollout. */
  readonly modelsBucket: s3.Bucket;
  /** Server access logs of the other buckets, ALB and CloudFront logs. */
  readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ModelStoreProps = {}) {
    super(scope, id);
    const fixed = props.fixedBucketNames ?? true;
    const name = (configured: string | undefined, prefix: string) =>
      configured ?? (fixed ? uniqueBucketName(prefix) : undefined);
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      ...SECURE_BUCKET_DEFAULTS,
      bucketName: name(props.accessLogsBucketName, 'slipway-access-logs'),
      // CloudFront standard logging writes with ACLs, so this one bucket keeps them enabled.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ id: 'expire-logs', expiration: Duration.days(365) }],
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket itself; logging it into itself would loop.',
    });

    this.dataBucket = new s3.Bucket(this, 'Data', {
      ...SECURE_BUCKET_DEFAULTS,
      bucketName: name(props.dataBucketName, 'slipway-data'),
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'data/',
    });

    this.modelsBucket = new s3.Bucket(this, 'Models', {
      ...SECURE_BUCKET_DEFAULTS,
      bucketName: name(props.modelsBucketName, 'sagemaker-shared-models'),
      versioned: true,
      eventBridgeEnabled: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'models/',
      lifecycleRules: [
        {
          id: 'expire-old-model-versions',
          noncurrentVersionExpiration: Duration.days(props.modelVersionRetentionDays ?? 30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
        {
          // The notebook's scratch space (the only place its role may write) is not a model archive:
          // it expires so that experiments do not pile up for ever.
          id: 'expire-notebook-scratch',
          prefix: NOTEBOOK_SCRATCH_PREFIX,
          expiration: Duration.days(props.notebookScratchRetentionDays ?? 30),
        },
      ],
    });
    // eventBridgeEnabled is applied by the CDK's stack-wide bucket-notifications custom resource.
    const stack = Stack.of(this);
    const handler = stack.node.children.find((c) => c.node.id.startsWith('BucketNotificationsHandler'));
    if (handler) {
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "The CDK's own bucket-notifications handler (enables EventBridge on the models bucket) logs with the AWS-managed basic execution policy.",
      });
    }
  }
}
