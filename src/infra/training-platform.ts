import { Aws, Fn, Stack, Validations } from 'aws-cdk-lib';
import type { CfnElement } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import { NOTEBOOK_SCRATCH_PREFIX, modelUploadEventPattern } from '../names.ts';
import type { SharedFileSystem } from './shared-file-system.ts';

/** Properties of `TrainingPlatform`. */
export interface TrainingPlatformProps {
  /** The VPC training jobs and the notebook run in. */
  readonly vpc: ec2.IVpc;
  /** Private subnets for jobs and the notebook. */
  readonly subnets: ec2.SubnetSelection;
  /** Training data: read-only for jobs and the notebook. */
  readonly dataBucket: s3.IBucket;
  /** Models: jobs write their output here; the notebook reads it and writes only under `NOTEBOOK_SCRATCH_PREFIX`. */
  readonly modelsBucket: s3.IBucket;
  /** Shared file system mounted by jobs and the notebook. */
  readonly fileSystem: SharedFileSystem;
  /** Repository of the training image (pull only). */
  readonly trainingRepository: ecr.IRepository;
  /** Create the notebook instance. @default true */
  readonly notebook?: boolean;
  /** Notebook instance type. @default 'ml.t3.medium' */
  readonly notebookInstanceType?: string;
}

/**
 * SageMaker side of the pipeline: least-privilege execution role of training jobs, job security
 * group, and an optional notebook with its own role, which cannot start a rollout.
 */
export class TrainingPlatform extends Construct {
  /** The SageMaker execution role of training jobs. */
  readonly role: iam.Role;
  /** Security group of training jobs (granted NFS to EFS). */
  readonly jobSecurityGroup: ec2.SecurityGroup;
  /** The subnets jobs run in. */
  readonly subnetIds: string[];
  /** The notebook instance, when enabled. */
  readonly notebook?: sagemaker.CfnNotebookInstance;
  /** The notebook's execution role, when enabled: reads data and models, writes only scratch. */
  readonly notebookRole?: iam.Role;

  constructor(scope: Construct, id: string, props: TrainingPlatformProps) {
    super(scope, id);
    this.subnetIds = props.vpc.selectSubnets(props.subnets).subnetIds;

    this.jobSecurityGroup = new ec2.SecurityGroup(this, 'JobSecurityGroup', {
      vpc: props.vpc,
      description: 'SageMaker training jobs (egress only; NFS to EFS)',
      allowAllOutbound: true,
    });
    props.fileSystem.allowFrom(this.jobSecurityGroup);

    this.role = sageMakerExecutionRole(
      this,
      'ExecutionRole',
      'SageMaker execution role of Slipway training jobs',
    );
    props.dataBucket.grantRead(this.role);
    // Jobs write their output (and read it back for checkpoints and evaluation); they never delete models.
    props.modelsBucket.grantRead(this.role);
    props.modelsBucket.grantPut(this.role);
    props.fileSystem.grantReadWrite(this.role);
    props.trainingRepository.grantPull(this.role);
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'SageMakerMetrics',
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
      }),
    );
    acknowledge(this.role, [
      [
        'Resource::*',
        'ECR GetAuthorizationToken, cloudwatch:PutMetricData (limited by namespace condition) and the EC2 ENI actions SageMaker uses for VPC jobs support no resource-level permissions.',
      ],
      LOG_GROUP_ACK,
      ...readAcks(props),
      ['Action::s3:PutObject*', 'CDK grantPut: jobs write their model output into the models bucket.'],
      ['Action::s3:Abort*', 'CDK grantPut: abort the job’s own failed multipart uploads.'],
    ]);

    if (props.notebook ?? true) {
      this.notebookRole = this.createNotebookRole(props);
      this.notebook = this.createNotebook(props, this.notebookRole);
    }
  }

  /**
   * The notebook's own role. A `model.tar.gz` in the models bucket is a production rollout, so
   * the notebook reads what jobs read but writes only under the scratch prefix, and never a key
   * the rollout rule matches.
   */
  private createNotebookRole(props: TrainingPlatformProps): iam.Role {
    const role = sageMakerExecutionRole(
      this,
      'NotebookRole',
      'SageMaker execution role of the Slipway notebook (cannot start a rollout)',
    );
    props.dataBucket.grantRead(role);
    props.modelsBucket.grantRead(role);
    const scratch = `${NOTEBOOK_SCRATCH_PREFIX}*`;
    props.modelsBucket.grantPut(role, scratch);
    props.modelsBucket.grantDelete(role, scratch);
    // The rollout rule matches a key suffix anywhere in the bucket (it has no prefix), so the
    // scratch prefix alone would not keep a `notebook-scratch/x/model.tar.gz` from deploying.
    // PutObject is also what CopyObject and multipart uploads need on the key they create.
    const [{ suffix }] = modelUploadEventPattern(props.modelsBucket.bucketName).detail.object.key;
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'NeverWriteARolloutTrigger',
        effect: iam.Effect.DENY,
        actions: ['s3:PutObject'],
        resources: [props.modelsBucket.arnForObjects(`*${suffix}`)],
      }),
    );
    props.fileSystem.grantReadWrite(role);
    const modelsId = resolveId(props.modelsBucket);
    acknowledge(role, [
      [
        'Resource::*',
        'The EC2 ENI actions SageMaker uses to attach the notebook to the VPC support no resource-level permissions.',
      ],
      LOG_GROUP_ACK,
      ...readAcks(props),
      ['Action::s3:Abort*', `CDK grantPut: abort the notebook's failed multipart uploads under ${scratch}.`],
      [
        'Action::s3:DeleteObject*',
        `CDK grantDelete limited to ${scratch}: the notebook cleans up its own scratch files.`,
      ],
      [`Resource::<${modelsId}.Arn>/${scratch}`, 'Objects of the notebook scratch prefix only.'],
    ]);
    return role;
  }

  private createNotebook(props: TrainingPlatformProps, role: iam.Role): sagemaker.CfnNotebookInstance {
    const securityGroup = new ec2.SecurityGroup(this, 'NotebookSecurityGroup', {
      vpc: props.vpc,
      description: 'SageMaker notebook instance (egress only; NFS to EFS)',
      allowAllOutbound: true,
    });
    props.fileSystem.allowFrom(securityGroup);
    const key = new kms.Key(this, 'NotebookVolumeKey', {
      enableKeyRotation: true,
      description: 'Encrypts the Slipway notebook instance volume',
    });
    const fs = props.fileSystem;
    // Runs at every notebook start: mounts the EFS access point over TLS under the Jupyter home.
    const script = [
      '#!/bin/bash',
      // A failed mount must not keep the notebook from starting: log it and carry on.
      'set -uo pipefail',
      'MOUNT=/home/ec2-user/SageMaker/efs',
      'mkdir -p "$MOUNT"',
      // Bounded: with the `endpoints` NAT strategy there is no package repository to reach.
      'command -v mount.efs >/dev/null 2>&1 || timeout 120 yum install -y amazon-efs-utils || true',
      `mount -t efs -o tls,iam,accesspoint=${fs.accessPoint.accessPointId} ${fs.fileSystem.fileSystemId}:/ "$MOUNT" || echo "slipway: EFS mount failed" >&2`,
      'chown ec2-user:ec2-user "$MOUNT" || true',
      '',
    ].join('\n');
    const lifecycle = new sagemaker.CfnNotebookInstanceLifecycleConfig(this, 'NotebookLifecycle', {
      onStart: [{ content: Fn.base64(script) }],
    });
    const subnetId = this.subnetIds[0];
    if (subnetId === undefined)
      throw new Error('TrainingPlatform: the VPC has no private subnet for the notebook');
    const notebook = new sagemaker.CfnNotebookInstance(this, 'Notebook', {
      instanceType: props.notebookInstanceType ?? 'ml.t3.medium',
      roleArn: role.roleArn,
      subnetId,
      securityGroupIds: [securityGroup.securityGroupId],
      directInternetAccess: 'Disabled',
      rootAccess: 'Disabled',
      kmsKeyId: key.keyId,
      lifecycleConfigName: lifecycle.attrNotebookInstanceLifecycleConfigName,
      volumeSizeInGb: 20,
    });
    // The mount targets must exist before the lifecycle script mounts EFS.
    notebook.node.addDependency(fs.fileSystem.mountTargetsAvailable);
    return notebook;
  }
}

/** A role SageMaker assumes, with what any execution role in the VPC needs: its log groups and the ENI actions. */
function sageMakerExecutionRole(scope: Construct, id: string, description: string): iam.Role {
  const role = new iam.Role(scope, id, {
    assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
    description,
  });
  // Pseudo-parameter tokens, not formatArn: with `region` set formatArn writes the literal
  // region, and the ARN would no longer match the cdk-nag acknowledgement LOG_GROUP_ACK.
  const logGroupArn = `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/*`;
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'SageMakerLogs',
      actions: [
        'logs:CreateLogGroup',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'logs:DescribeLogStreams',
      ],
      resources: [logGroupArn],
    }),
  );
  // What SageMaker needs to attach jobs and the notebook to the VPC (these EC2 actions have no resource-level scoping).
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'SageMakerVpcNetworking',
      actions: [
        'ec2:CreateNetworkInterface',
        'ec2:CreateNetworkInterfacePermission',
        'ec2:DeleteNetworkInterface',
        'ec2:DeleteNetworkInterfacePermission',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeVpcs',
        'ec2:DescribeDhcpOptions',
        'ec2:DescribeSubnets',
        'ec2:DescribeSecurityGroups',
      ],
      resources: ['*'],
    }),
  );
  return role;
}

const LOG_GROUP_ACK: [string, string] = [
  'Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*',
  'SageMaker names job and notebook log streams at run time; the grant is limited to the /aws/sagemaker/ log groups.',
];

/** The cdk-nag findings of `grantRead` on the data and models buckets, with their reasons. */
function readAcks(props: TrainingPlatformProps): Array<[string, string]> {
  return [
    ['Action::s3:GetBucket*', 'CDK grantRead: read-only bucket metadata on the data and models buckets.'],
    ['Action::s3:GetObject*', 'CDK grantRead: read-only object access on the data and models buckets.'],
    ['Action::s3:List*', 'CDK grantRead: listing the data and models buckets.'],
    [`Resource::<${resolveId(props.dataBucket)}.Arn>/*`, 'Objects of the one data bucket.'],
    [`Resource::<${resolveId(props.modelsBucket)}.Arn>/*`, 'Objects of the one models bucket.'],
  ];
}

/** Acknowledge cdk-nag IAM5 findings on a role's default policy, each with its reason. */
function acknowledge(role: iam.Role, acks: ReadonlyArray<readonly [string, string]>): void {
  const policy = role.node.findChild('DefaultPolicy');
  for (const [finding, reason] of acks) {
    Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
  }
}

/** The logical ID CDK gives a bucket's CfnBucket, as it appears in cdk-nag finding IDs. */
function resolveId(bucket: s3.IBucket): string {
  const child = bucket.node.defaultChild;
  return child ? Stack.of(bucket).getLogicalId(child as CfnElement) : bucket.node.id;
}

/** The partition-aware `arn:...:sagemaker:<region>:<account>:training-job/<prefix>*` ARN pattern. */
export function trainingJobArnPattern(prefix: string): string {
  return `arn:${Aws.PARTITION}:sagemaker:${Aws.REGION}:${Aws.ACCOUNT_ID}:training-job/${prefix}*`;
}
