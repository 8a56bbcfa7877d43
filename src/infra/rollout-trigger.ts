import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Annotations, Aws, Duration, RemovalPolicy, Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  ENV,
  INFERENCE_CONTAINER_NAME,
  REVISION_TAGS,
  ROLLOUT_RETRY_ATTEMPTS,
  modelUploadEventPattern,
} from '../names.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** Repository root (holds package-lock.json), found from this file so the app runs from any cwd. */
export const PROJECT_ROOT = resolve(here, '..', '..');

/** The rollout handler's source: `src/rollout/lambda.ts`, export `handler`. */
export const ROLLOUT_HANDLER_ENTRY = resolve(PROJECT_ROOT, 'src', 'rollout', 'lambda.ts');

/** Properties of `RolloutTrigger`. */
export interface RolloutTriggerProps {
  /** The models bucket whose `model.tar.gz` uploads start a rollout. */
  readonly modelsBucket: s3.IBucket;
  /** The ECS service to redeploy (the function may update this one service only). */
  readonly service: ecs.FargateService;
  /** The cluster of the service. */
  readonly cluster: ecs.ICluster;
  /** Roles of the task definition the function passes to new revisions. */
  readonly taskRole: iam.IRole;
  /** Execution role of the task definition. */
  readonly executionRole: iam.IRole;
  /** Handler source file. @default ROLLOUT_HANDLER_ENTRY */
  readonly entry?: string;
  /** Log retention of the function. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Run one rollout at a time (reserved concurrency 1). Turning it off lets two uploads' rollouts
   * race (see ROLLOUTS_NOT_SERIAL); it exists for accounts that cannot reserve any concurrency.
   * Left unset, synth also notes what the reservation needs from the account
   * (SERIAL_ROLLOUTS_NEED_CONCURRENCY); set to true, it says nothing.
   * @default true
   */
  readonly serialRollouts?: boolean;
}

/**
 * Why a rollout Lambda without reserved concurrency 1 can leave an older model live. The deploy
 * re-checks the service just before UpdateService, but ECS has no conditional update: when two
 * rollouts both pass their re-check before either switches, the last switch wins.
 */
export const ROLLOUTS_NOT_SERIAL =
  'serialRollouts is false: rollouts of uploads that arrive together run in parallel. Each re-reads the service and ' +
  're-checks it just before UpdateService, so most overlaps still end on the newer model, but when both pass the ' +
  're-check before either switches, the last switch wins, even with the older model, and nothing retries the newer ' +
  'one (upload it again). Set serialRollouts to true once the account can reserve Lambda concurrency.';

/**
 * Why a deploy of a serial rollout Lambda can fail on a new account, and what to do about it.
 * CloudFormation reports only Lambda's own error, quoted here so a search for it finds this.
 */
export const SERIAL_ROLLOUTS_NEED_CONCURRENCY =
  'The rollout function reserves 1 concurrent execution (serialRollouts). Lambda keeps 10 executions of the ' +
  "account's regional limit unreserved, so where that limit is 10 (often on new accounts) the deploy fails with " +
  '"Specified ReservedConcurrentExecutions for function decreases account\'s UnreservedConcurrentExecution below ' +
  'its minimum value of [10]". Request a higher "Concurrent executions" quota in Service Quotas, or deploy with ' +
  '-c serialRollouts=false (src/infra/README.md says what that gives up). This note shows while serialRollouts ' +
  'is unset: set "serialRollouts": true in cdk.json once the account has room, and it goes away.';

/** S3 upload -> EventBridge rule -> rollout Lambda, with retries, DLQ, failure destination and alarms. */
export class RolloutTrigger extends Construct {
  /** The rollout function. */
  readonly function: nodejs.NodejsFunction;
  /** The function's log: one JSON line per outcome of an event (`slipway deploy --wait` reads it). */
  readonly logGroup: logs.ILogGroup;
  /** The rule matching `model.tar.gz` uploads to the models bucket. */
  readonly rule: events.Rule;
  /** Events EventBridge could not deliver after its retries. */
  readonly deadLetterQueue: sqs.Queue;
  /** Asynchronous invocations that failed after Lambda's retries. */
  readonly failureQueue: sqs.Queue;
  /** Alarms: DLQ depth, failure destination depth, function errors. */
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: RolloutTriggerProps) {
    super(scope, id);
    const entry = props.entry ?? ROLLOUT_HANDLER_ENTRY;
    if (!existsSync(entry)) {
      throw new Error(`RolloutTrigger: handler entry ${entry} does not exist`);
    }

    const queueProps: sqs.QueueProps = {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    };
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', queueProps);
    this.failureQueue = new sqs.Queue(this, 'FailureQueue', queueProps);
    for (const queue of [this.deadLetterQueue, this.failureQueue]) {
      Validations.of(queue).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason:
          'This queue is itself a dead-letter destination (EventBridge DLQ / Lambda on-failure); it is alarmed, not redriven.',
      });
    }

    const serial = props.serialRollouts ?? true;
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.logGroup = logGroup;
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry,
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.seconds(60),
      // One rollout at a time: concurrent uploads are serialised, never raced against each other
      // (the deploy's re-check narrows the race but cannot close it; see ROLLOUTS_NOT_SERIAL).
      ...(serial ? { reservedConcurrentExecutions: 1 } : {}),
      logGroup,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: resolve(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        [ENV.cluster]: props.cluster.clusterName,
        [ENV.service]: props.service.serviceName,
        [ENV.modelsBucket]: props.modelsBucket.bucketName,
        [ENV.container]: INFERENCE_CONTAINER_NAME,
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        minify: true,
        sourceMap: true,
        forceDockerBundling: false,
        mainFields: ['module', 'main'],
        // Some dependencies still call require(); give ESM bundles one.
        banner:
          "import { createRequire as __slipwayCreateRequire } from 'node:module';const require = __slipwayCreateRequire(import.meta.url);",
        externalModules: [],
      },
      retryAttempts: ROLLOUT_RETRY_ATTEMPTS,
      maxEventAge: Duration.hours(1),
      onFailure: new destinations.SqsDestination(this.failureQueue),
      description: 'Slipway rollout: pin an uploaded model in a new task-definition revision and redeploy',
    });

    // The note matters until someone has chosen; an explicit true is that choice, so synth stays quiet.
    if (props.serialRollouts === undefined) {
      Annotations.of(this.function).addInfo(SERIAL_ROLLOUTS_NEED_CONCURRENCY);
    } else if (!serial) {
      Annotations.of(this).addWarningV2('@slipway/infra:rolloutsNotSerial', ROLLOUTS_NOT_SERIAL);
    }

    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'UpdateOnlyTheInferenceService',
        actions: ['ecs:DescribeServices', 'ecs:UpdateService'],
        resources: [props.service.serviceArn],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TaskDefinitionRevisions',
        actions: [
          'ecs:DescribeTaskDefinition',
          'ecs:RegisterTaskDefinition',
          'ecs:DeregisterTaskDefinition',
          'ecs:ListTaskDefinitions',
        ],
        resources: ['*'],
      }),
    );
    // A new revision carries the live one's tags (all but `aws:` ones). Tagging while registering
    // needs ecs:TagResource, allowed here only on this family's revisions and only on create.
    const family = props.service.taskDefinition.family;
    // Pseudo-parameter tokens, not formatArn, so the ARN matches the acknowledgement below
    // whether or not the stack's region is known at synth.
    const familyRevisions = `arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:task-definition/${family}:*`;
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TagOnlyNewRevisions',
        actions: ['ecs:TagResource'],
        resources: [familyRevisions],
        conditions: { StringEquals: { 'ecs:CreateAction': 'RegisterTaskDefinition' } },
      }),
    );
    // Once UpdateService accepted a revision, the rollout tags it with that deployment: what later
    // tells a revision the service ran (and left) from one a failed rollout only registered.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TagRevisionsWithTheirDeployment',
        actions: ['ecs:TagResource'],
        resources: [familyRevisions],
        conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': [REVISION_TAGS.deployment] } },
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'PassOnlyTheTaskRoles',
        actions: ['iam:PassRole'],
        resources: [props.taskRole.roleArn, props.executionRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    );
    // Where an event's key reads differently URL-decoded and raw, the function HEADs both readings
    // to find the uploaded object (src/rollout/event-key.ts). Listing makes a missing key a 404.
    props.modelsBucket.grantRead(this.function);
    const role = this.function.role;
    if (role) {
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: 'AWS-managed basic execution policy: only logs:CreateLogGroup/CreateLogStream/PutLogEvents.',
      });
      Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'ecs:RegisterTaskDefinition, DescribeTaskDefinition, DeregisterTaskDefinition and ListTaskDefinitions support no resource-level permissions (IAM service authorization reference); the service itself is pinned by ARN and iam:PassRole by role ARN.',
      });
      const bucketId = Stack.of(this).getLogicalId(props.modelsBucket.node.defaultChild as CfnElement);
      const readAcks: Array<[string, string]> = [
        ['Action::s3:GetBucket*', 'CDK grantRead on the one models bucket: bucket metadata, read-only.'],
        [
          'Action::s3:GetObject*',
          'CDK grantRead on the one models bucket: HEAD an uploaded model, read-only.',
        ],
        ['Action::s3:List*', 'CDK grantRead on the one models bucket: a missing key answers 404, not 403.'],
        [`Resource::<${bucketId}.Arn>/*`, 'Any model object of the one models bucket can start a rollout.'],
      ];
      for (const [finding, reason] of readAcks) {
        Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({
          id: `AwsSolutions-IAM5[${finding}]`,
          reason,
        });
      }
      Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task-definition/${family}:*]`,
        reason:
          'Revision numbers are assigned by ECS at registration; the grants are ecs:TagResource on the one family, either with ecs:CreateAction = RegisterTaskDefinition or for the rollout deployment tag key alone.',
      });
    }

    this.rule = new events.Rule(this, 'ModelUploaded', {
      description: 'A model.tar.gz landed in the models bucket: roll it out',
      eventPattern: toEventPattern(modelUploadEventPattern(props.modelsBucket.bucketName)),
    });
    this.rule.addTarget(
      new targets.LambdaFunction(this.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(2),
      }),
    );

    this.alarms = [
      new cloudwatch.Alarm(this, 'DeadLetterQueueNotEmpty', {
        alarmDescription: 'EventBridge could not deliver a model-upload event to the rollout function',
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'FailureQueueNotEmpty', {
        alarmDescription: 'A rollout invocation failed after Lambda retries (see the failure queue)',
        metric: this.failureQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'FunctionErrors', {
        alarmDescription: 'The rollout function failed an invocation',
        metric: this.function.metricErrors({ period: Duration.minutes(1) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
  }
}

/** The shared pattern in the CDK's `EventPattern` shape (`detail-type` becomes `detailType`). */
export function toEventPattern(pattern: ReturnType<typeof modelUploadEventPattern>): events.EventPattern {
  return {
    source: [...pattern.source],
    detailType: [...pattern['detail-type']],
    detail: {
      bucket: { name: [...pattern.detail.bucket.name] },
      object: { key: pattern.detail.object.key.map((k) => ({ ...k })) },
    },
  };
}
