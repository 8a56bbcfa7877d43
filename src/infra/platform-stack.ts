import { Annotations, Aws, CfnOutput, Duration, Fn, Stack, Validations } from 'aws-cdk-lib';
import type { CfnElement } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import {
  DEFAULT_STACK_NAME,
  GITHUB_ROLE_WORKFLOWS,
  STACK_OUTPUTS,
  githubRoleName,
  imageRepositoryName,
} from '../names.ts';
import type { SlipwayConfig } from './config.ts';
import { Alarms } from './alarms.ts';
import { DocsSite } from './docs-site/docs-site.ts';
import { GithubOidc } from './github-oidc.ts';
import { InferenceService } from './inference-service.ts';
import { ModelStore } from './model-store.ts';
import { Network } from './network.ts';
import { githubOidcProps } from './registry-stack.ts';
import { RolloutTrigger } from './rollout-trigger.ts';
import { SharedFileSystem } from './shared-file-system.ts';
import { TrainingPlatform, trainingJobArnPattern } from './training-platform.ts';

/** Prefix of training-job names the launch-training role may create. */
export const TRAINING_JOB_PREFIX = 'slipway-';

/**
 * Longest session of the launch-training role: train.yml follows a job for up to its 360-minute
 * timeout on one set of credentials (configure-aws-credentials does not refresh them).
 */
export const LAUNCH_TRAINING_MAX_SESSION = Duration.hours(6);

/** Properties of `PlatformStack`. */
export interface PlatformStackProps extends StackProps {
  /** The validated app config (imageTag required). */
  readonly config: SlipwayConfig & { readonly imageTag: string };
  /** Rollout handler source. @default src/rollout/lambda.ts */
  readonly rolloutEntry?: string;
}

/** The platform: network, storage, training, inference service, rollout trigger, docs site and workflow roles. */
export class PlatformStack extends Stack {
  /** VPC and endpoints. */
  readonly network: Network;
  /** Data, models and access-log buckets. */
  readonly store: ModelStore;
  /** EFS. */
  readonly fileSystem: SharedFileSystem;
  /** SageMaker role, job security group, notebook. */
  readonly training: TrainingPlatform;
  /** ECS service behind the ALB. */
  readonly inference: InferenceService;
  /** EventBridge rule and rollout Lambda. */
  readonly rollout: RolloutTrigger;
  /** The alarm topic every alarm notifies, and the inference service's alarms. */
  readonly alarms: Alarms;
  /** Docs bucket and CloudFront. */
  readonly docs: DocsSite;
  /** Role of docs.yml. */
  readonly publishDocsRole: iam.Role;
  /** Role of train.yml. */
  readonly launchTrainingRole: iam.Role;
  /** Role of deploy.yml's restore step (after a failed deploy). */
  readonly restoreModelRole: iam.Role;

  constructor(scope: Construct, id: string, props: PlatformStackProps) {
    super(scope, id, props);
    const { config } = props;
    const retention = config.logRetentionDays as logs.RetentionDays;

    // The default stack keeps its fixed bucket names; another stage's would collide with them
    // (bucket names are global), so CloudFormation names its buckets from the stack name.
    const fixedBucketNames = config.stackName === DEFAULT_STACK_NAME;

    this.network = new Network(this, 'Network', {
      natStrategy: config.natStrategy,
      flowLogRetention: retention,
    });
    const { vpc, privateSubnets } = this.network;
    this.store = new ModelStore(this, 'Store', {
      dataBucketName: config.dataBucketName,
      modelsBucketName: config.modelsBucketName,
      accessLogsBucketName: config.accessLogsBucketName,
      modelVersionRetentionDays: config.modelVersionRetentionDays,
      fixedBucketNames,
    });
    this.fileSystem = new SharedFileSystem(this, 'FileSystem', { vpc, subnets: privateSubnets });

    // Repositories belong to the registry stack; referencing them by name keeps the stacks free of exports.
    const trainingRepository = ecr.Repository.fromRepositoryName(
      this,
      'TrainingRepository',
      imageRepositoryName('training', config.stackName),
    );
    const inferenceRepository = ecr.Repository.fromRepositoryName(
      this,
      'InferenceRepository',
      imageRepositoryName('inference', config.stackName),
    );

    this.training = new TrainingPlatform(this, 'Training', {
      vpc,
      subnets: privateSubnets,
      dataBucket: this.store.dataBucket,
      modelsBucket: this.store.modelsBucket,
      fileSystem: this.fileSystem,
      trainingRepository,
      notebook: config.notebook,
      notebookInstanceType: config.notebookInstanceType,
    });

    this.inference = new InferenceService(this, 'Inference', {
      vpc,
      subnets: privateSubnets,
      repository: inferenceRepository,
      imageTag: config.imageTag,
      modelsBucket: this.store.modelsBucket,
      initialModelUri: config.initialModelUri,
      ...(config.initialModelRecord === undefined ? {} : { initialModelRecord: config.initialModelRecord }),
      family: `${config.stackName}-inference`,
      cpu: config.serviceCpu,
      memoryMiB: config.serviceMemory,
      minCount: config.minCount,
      maxCount: config.maxCount,
      internetFacing: config.internetFacing,
      certificateArn: config.certificateArn,
      allowedCidrs: config.allowedCidrs,
      logRetention: retention,
      accessLogsBucket: this.store.accessLogsBucket,
    });

    if (config.desiredCount !== undefined) {
      Annotations.of(this).addWarningV2(
        '@slipway/infra:desiredCountIgnored',
        `desiredCount (${config.desiredCount}) is ignored: autoscaling keeps between minCount (${config.minCount}) and maxCount (${config.maxCount}) tasks, and a fixed count would reset it on every deploy. Remove it, or raise minCount.`,
      );
    }

    this.rollout = new RolloutTrigger(this, 'Rollout', {
      modelsBucket: this.store.modelsBucket,
      service: this.inference.service,
      cluster: this.inference.cluster,
      taskRole: this.inference.taskRole,
      executionRole: this.inference.executionRole,
      entry: props.rolloutEntry,
      logRetention: retention,
      serialRollouts: config.serialRollouts,
    });

    this.alarms = new Alarms(this, 'Alarms', {
      alarms: this.rollout.alarms,
      loadBalancer: this.inference.loadBalancer,
      targetGroup: this.inference.targetGroup,
      emails: config.alarmEmails,
    });

    this.docs = new DocsSite(this, 'Docs', {
      accessLogsBucket: this.store.accessLogsBucket,
      bucketName: config.docsBucketName,
      fixedBucketName: fixedBucketNames,
    });

    // The registry stack owns the provider.
    const github = new GithubOidc(this, 'Github', { ...githubOidcProps(config), createProvider: false });
    this.publishDocsRole = github.addRole(
      'PublishDocs',
      githubRoleName('publishDocs', config.stackName),
      'GitHub Actions: publish the docs bucket, invalidate CloudFront, expire unused assets',
      { workflows: GITHUB_ROLE_WORKFLOWS.publishDocs },
    );
    this.docs.bucket.grantReadWrite(this.publishDocsRole);
    this.docs.bucket.grantDelete(this.publishDocsRole);
    this.docs.distribution.grantCreateInvalidation(this.publishDocsRole);
    this.grantDescribeStack(this.publishDocsRole);

    this.launchTrainingRole = github.addRole(
      'LaunchTraining',
      githubRoleName('launchTraining', config.stackName),
      'GitHub Actions: start and follow Slipway SageMaker training jobs',
      { maxSessionDuration: LAUNCH_TRAINING_MAX_SESSION, workflows: GITHUB_ROLE_WORKFLOWS.launchTraining },
    );
    this.launchTrainingRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'SlipwayTrainingJobs',
        actions: [
          'sagemaker:CreateTrainingJob',
          'sagemaker:DescribeTrainingJob',
          'sagemaker:StopTrainingJob',
          'sagemaker:AddTags',
        ],
        resources: [trainingJobArnPattern(TRAINING_JOB_PREFIX)],
      }),
    );
    this.launchTrainingRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'PassTheTrainingRoleToSageMaker',
        actions: ['iam:PassRole'],
        resources: [this.training.role.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
      }),
    );
    this.launchTrainingRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadTrainingJobLogs',
        actions: ['logs:DescribeLogStreams', 'logs:GetLogEvents'],
        // Pseudo-parameter tokens, not formatArn, so the ARN matches the acknowledgement below
        // whether or not the stack's region is known at synth.
        resources: [
          `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/TrainingJobs:*`,
        ],
      }),
    );
    this.grantDescribeStack(this.launchTrainingRole);

    // After a failed deploy CloudFormation's rollback pins an older model; deploy.yml asks the
    // rollout function to pin the live one again (src/rollout/restore.ts). Invoking that one
    // function is all the role may do besides reading this stack's status and outputs: the ECS
    // writes stay with the function.
    this.restoreModelRole = github.addRole(
      'RestoreModel',
      githubRoleName('restoreModel', config.stackName),
      'GitHub Actions: after a failed deploy, ask the rollout function to pin the live model again',
      { workflows: GITHUB_ROLE_WORKFLOWS.restoreModel },
    );
    // The unqualified function only (grantInvoke would add every version, `<arn>:*`).
    this.restoreModelRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeTheRolloutFunction',
        actions: ['lambda:InvokeFunction'],
        resources: [this.rollout.function.functionArn],
      }),
    );
    this.grantDescribeStack(this.restoreModelRole);
    this.acknowledgeWorkflowRoleFindings();
    this.addOutputs(config);
  }

  /** Workflows read this stack's outputs (bucket names, role ARNs) with DescribeStacks. */
  private grantDescribeStack(role: iam.Role): void {
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadStackOutputs',
        actions: ['cloudformation:DescribeStacks'],
        resources: [this.stackId],
      }),
    );
  }

  private acknowledgeWorkflowRoleFindings(): void {
    const docsPolicy = this.publishDocsRole.node.findChild('DefaultPolicy');
    const bucketId = this.getLogicalId(this.docs.bucket.node.defaultChild as CfnElement);
    const docsAcks: Array<[string, string]> = [
      [
        'Action::s3:GetBucket*',
        'CDK grantReadWrite on the one docs bucket: aws s3 sync reads bucket metadata.',
      ],
      [
        'Action::s3:GetObject*',
        'CDK grantReadWrite on the one docs bucket: aws s3 sync compares objects; the asset sweep reads stale marks (object tags).',
      ],
      ['Action::s3:List*', 'CDK grantReadWrite on the one docs bucket: aws s3 sync lists it.'],
      [
        'Action::s3:DeleteObject*',
        'aws s3 sync --delete removes pages that no longer exist, and the asset sweep assets unused for 30 days, in the docs bucket only.',
      ],
      ['Action::s3:Abort*', 'CDK grantReadWrite: abort failed multipart uploads to the docs bucket.'],
      [
        `Resource::<${bucketId}.Arn>/*`,
        'Every object of the one docs bucket (the whole site is replaced on publish).',
      ],
    ];
    for (const [finding, reason] of docsAcks) {
      Validations.of(docsPolicy).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    }
    const trainingPolicy = this.launchTrainingRole.node.findChild('DefaultPolicy');
    Validations.of(trainingPolicy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/${TRAINING_JOB_PREFIX}*]`,
      reason: 'Job names are generated per run; the role may only touch jobs named with the Slipway prefix.',
    });
    Validations.of(trainingPolicy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs:*]',
      reason:
        'Read-only access to the streams of the SageMaker training-job log group (stream names are per job).',
    });
  }

  private addOutputs(config: SlipwayConfig & { readonly imageTag: string }): void {
    const outputs: Record<keyof typeof STACK_OUTPUTS, string> = {
      dataBucket: this.store.dataBucket.bucketName,
      modelsBucket: this.store.modelsBucket.bucketName,
      docsBucket: this.docs.bucket.bucketName,
      docsDistributionId: this.docs.distribution.distributionId,
      cluster: this.inference.cluster.clusterName,
      service: this.inference.service.serviceName,
      loadBalancerUrl: this.inference.url,
      trainingRoleArn: this.training.role.roleArn,
      trainingImageUri: ecr.Repository.fromRepositoryName(
        this,
        'TrainingImage',
        imageRepositoryName('training', config.stackName),
      ).repositoryUriForTag(config.imageTag),
      trainingSubnets: Fn.join(',', this.training.subnetIds),
      trainingSecurityGroup: this.training.jobSecurityGroup.securityGroupId,
      fileSystemId: this.fileSystem.fileSystem.fileSystemId,
      alarmTopicArn: this.alarms.topic.topicArn,
      rolloutLogGroup: this.rollout.logGroup.logGroupName,
      rolloutFunction: this.rollout.function.functionName,
    };
    for (const [key, value] of Object.entries(outputs) as Array<[keyof typeof STACK_OUTPUTS, string]>) {
      // The logical ID is the output key the CLI and workflows look up: never let the CDK rename it.
      new CfnOutput(this, STACK_OUTPUTS[key], { value }).overrideLogicalId(STACK_OUTPUTS[key]);
    }
  }
}
