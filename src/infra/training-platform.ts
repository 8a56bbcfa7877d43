import { Aws, Fn, Stack, Validations } from 'aws-cdk-lib';
import type { CfnElement } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import type { SharedFileSystem } from './shared-file-system.ts';

/** Properties of `TrainingPlatform`. */
export interface TrainingPlatformProps {
  /** The VPC training jobs and the notebook run in. */
  readonly vpc: ec2.IVpc;
  /** Private subnets for jobs and the notebook. */
  readonly subnets: ec2.SubnetSelection;
  /** Training data: read-only for jobs. */
  readonly dataBucket: s3.IBucket;
  /** Models: jobs write their output here. */
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

/** SageMaker side of the pipeline: least-privilege execution role, job security group, optional notebook. */
export class TrainingPlatform extends Construct {
  /** The SageMaker execution role of training jobs and the notebook. */
  readonly role: iam.Role;
  /** Security group of training jobs (granted NFS to EFS). */
  readonly jobSecurityGroup: ec2.SecurityGroup;
  /** The subnets jobs run in. */
  readonly subnetIds: string[];
  /** The notebook instance, when enabled. */
  readonly notebook?: sagemaker.CfnNotebookInstance;

  constructor(scope: Construct, id: string, props: TrainingPlatformProps) {
    super(scope, id);
    this.subnetIds = props.vpc.selectSubnets(props.subnets).subnetIds;

    this.jobSecurityGroup = new ec2.SecurityGroup(this, 'JobSecurityGroup', {
      vpc: props.vpc,
      description: 'SageMaker training jobs (egress only; NFS to EFS)',
      allowAllOutbound: true,
    });
    props.fileSystem.allowFrom(this.jobSecurityGroup);

    this.role = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'SageMaker execution role of Slipway training jobs and the notebook',
    });
    props.dataBucket.grantRead(this.role);
    // Jobs write their output (and read it back for checkpoints and evaluation); they never delete models.
    props.modelsBucket.grantRead(this.role);
    props.modelsBucket.grantPut(this.role);
    props.fileSystem.grantReadWrite(this.role);
    props.trainingRepository.grantPull(this.role);

    // Pseudo-parameter tokens, not formatArn: with `region` set formatArn writes the literal
    // region, and the ARN would no longer match the cdk-nag acknowledgement below.
    const logGroupArn = `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/*`;
    this.role.addToPolicy(
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
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'SageMakerMetrics',
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
      }),
    );
    // What SageMaker needs to attach jobs to the VPC (these EC2 actions have no resource-level scoping).
    this.role.addToPolicy(
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
    const policy = this.role.node.findChild('DefaultPolicy');
    const acks: Array<[string, string]> = [
      [
        'Resource::*',
        'ECR GetAuthorizationToken, cloudwatch:PutMetricData (limited by namespace condition) and the EC2 ENI actions SageMaker uses for VPC jobs support no resource-level permissions.',
      ],
      [
        'Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*',
        'SageMaker names job log streams at run time; the grant is limited to the /aws/sagemaker/ log groups.',
      ],
      ['Action::s3:GetBucket*', 'CDK grantRead: read-only bucket metadata on the data and models buckets.'],
      ['Action::s3:GetObject*', 'CDK grantRead: read-only object access on the data and models buckets.'],
      ['Action::s3:List*', 'CDK grantRead: listing the data and models buckets.'],
      ['Action::s3:PutObject*', 'CDK grantPut: jobs write their model output into the models bucket.'],
      ['Action::s3:Abort*', 'CDK grantPut: abort the job’s own failed multipart uploads.'],
      [`Resource::<${resolveId(props.dataBucket)}.Arn>/*`, 'Objects of the one data bucket.'],
      [`Resource::<${resolveId(props.modelsBucket)}.Arn>/*`, 'Objects of the one models bucket.'],
    ];
    for (const [finding, reason] of acks) {
      Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    }

    if (props.notebook ?? true) {
      this.notebook = this.createNotebook(props);
    }
  }

  private createNotebook(props: TrainingPlatformProps): sagemaker.CfnNotebookInstance {
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
      roleArn: this.role.roleArn,
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

/** The logical ID CDK gives a bucket's CfnBucket, as it appears in cdk-nag finding IDs. */
function resolveId(bucket: s3.IBucket): string {
  const child = bucket.node.defaultChild;
  return child ? Stack.of(bucket).getLogicalId(child as CfnElement) : bucket.node.id;
}

/** The partition-aware `arn:...:sagemaker:<region>:<account>:training-job/<prefix>*` ARN pattern. */
export function trainingJobArnPattern(prefix: string): string {
  return `arn:${Aws.PARTITION}:sagemaker:${Aws.REGION}:${Aws.ACCOUNT_ID}:training-job/${prefix}*`;
}
