import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  ENV,
  GITHUB_OIDC_ROLES,
  IMAGE_REPOSITORIES,
  INFERENCE_CONTAINER_NAME,
  NOTEBOOK_SCRATCH_PREFIX,
  NO_MODEL_URI,
  REVISION_TAGS,
  STACK_OUTPUTS,
  modelUploadEventPattern,
} from '../../src/names.ts';
import { URL_REWRITE_SOURCE } from '../../src/infra/docs-site/url-rewrite.ts';
import { READINESS_PATH } from '../../src/infra/inference-service.ts';
import { ROLLOUTS_NOT_SERIAL, SERIAL_ROLLOUTS_NEED_CONCURRENCY } from '../../src/infra/rollout-trigger.ts';
import { buildSlipwayApp, type SlipwayApp } from '../../src/infra/slipway-app.ts';
import { matchesEventPattern } from '../../src/rollout/event.ts';
import { MODELS_BUCKET, modelEvent } from '../rollout/fixtures.ts';
import {
  TEST_CONFIG,
  actionsOf,
  allows,
  cdkJsonContext,
  grants,
  logicalId,
  statementsOfRole,
  synthFindings,
  tempOutdir,
  type Finding,
  type Statement,
} from './fixtures.ts';

// One synthesis of the whole app (both stacks, cdk-nag, esbuild bundling) shared by every test.
let built: SlipwayApp & { platform: NonNullable<SlipwayApp['platform']> };
let findings: Finding[];
let outdir: string;
let platform: Template;
let registry: Template;

beforeAll(() => {
  outdir = tempOutdir();
  const app = buildSlipwayApp({ context: { ...cdkJsonContext(), ...TEST_CONFIG }, outdir });
  if (!app.platform) throw new Error('the platform stack was not built');
  built = { ...app, platform: app.platform };
  findings = synthFindings(built.app);
  platform = Template.fromStack(built.platform);
  registry = Template.fromStack(built.registry);
}, 240_000);

// The assembly holds the bundled Lambda (megabytes): do not leave it in /tmp.
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

function id(construct: Parameters<typeof logicalId>[0]): string {
  return logicalId(construct);
}

function roleStatements(template: Template, role: Parameters<typeof logicalId>[0]): Statement[] {
  return statementsOfRole(template, id(role));
}

describe('cdk-nag', () => {
  it('reports no unacknowledged AwsSolutions finding on either stack', () => {
    expect(findings).toEqual([]);
  });
});

describe('network', () => {
  it('spans two AZs with public and private subnets', () => {
    const subnets = Object.values(platform.findResources('AWS::EC2::Subnet')) as Array<{
      Properties: { MapPublicIpOnLaunch: boolean };
    }>;
    expect(subnets.filter((s) => s.Properties.MapPublicIpOnLaunch)).toHaveLength(2);
    expect(subnets.filter((s) => !s.Properties.MapPublicIpOnLaunch)).toHaveLength(2);
  });

  it('has an S3 gateway endpoint', () => {
    platform.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({
        'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('\\.s3$')])],
      }),
    });
  });

  it('uses a single NAT gateway by default (the documented cost-aware choice)', () => {
    platform.resourceCountIs('AWS::EC2::NatGateway', 1);
  });

  it('logs all VPC traffic', () => {
    platform.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL' });
  });
});

describe('storage', () => {
  it('enables EventBridge notifications on the models bucket', () => {
    platform.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: { Ref: id(built.platform.store.modelsBucket) },
      NotificationConfiguration: { EventBridgeConfiguration: {} },
    });
  });

  it('versions the models bucket and expires old versions', () => {
    platform.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['sagemaker-shared-models-'])] }),
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 } })]),
      },
    });
  });

  it("expires the notebook's scratch objects, and nothing else in the models bucket, after 30 days", () => {
    const bucket = platform.toJSON().Resources[id(built.platform.store.modelsBucket)] as {
      Properties: { LifecycleConfiguration: { Rules: { Prefix?: string; ExpirationInDays?: number }[] } };
    };
    const expiring = bucket.Properties.LifecycleConfiguration.Rules.filter((r) => r.ExpirationInDays);
    expect(expiring).toEqual([
      expect.objectContaining({ Prefix: NOTEBOOK_SCRATCH_PREFIX, ExpirationInDays: 30, Status: 'Enabled' }),
    ]);
  });

  it('names the models bucket uniquely from account and region by default', () => {
    const bucket = platform.toJSON().Resources[id(built.platform.store.modelsBucket)] as {
      Properties: { BucketName: unknown };
    };
    expect(bucket.Properties.BucketName).toEqual({
      'Fn::Join': ['', ['sagemaker-shared-models-', { Ref: 'AWS::AccountId' }, '-', { Ref: 'AWS::Region' }]],
    });
  });

  it('blocks public access and encrypts every bucket', () => {
    const buckets = Object.values(platform.findResources('AWS::S3::Bucket')) as Array<{
      Properties: { PublicAccessBlockConfiguration: unknown; BucketEncryption?: unknown };
    }>;
    expect(buckets).toHaveLength(4);
    for (const b of buckets) {
      expect(b.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(b.Properties.BucketEncryption).toBeDefined();
    }
  });

  it('denies non-TLS requests on every bucket', () => {
    const bucketIds = Object.keys(platform.findResources('AWS::S3::Bucket'));
    const policies = Object.values(platform.findResources('AWS::S3::BucketPolicy')) as Array<{
      Properties: { Bucket: { Ref: string }; PolicyDocument: { Statement: Statement[] } };
    }>;
    for (const bucketId of bucketIds) {
      const policy = policies.find((p) => p.Properties.Bucket.Ref === bucketId);
      expect(policy, bucketId).toBeDefined();
      expect(policy!.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });

  it('encrypts EFS and moves cold files to IA', () => {
    platform.hasResourceProperties('AWS::EFS::FileSystem', {
      Encrypted: true,
      LifecyclePolicies: Match.arrayWith([{ TransitionToIA: 'AFTER_30_DAYS' }]),
    });
    platform.resourceCountIs('AWS::EFS::AccessPoint', 1);
  });

  it('opens NFS only to the training and notebook security groups', () => {
    const efsSg = built.platform.fileSystem.fileSystem.connections.securityGroups[0]!;
    const ingress = Object.values(platform.findResources('AWS::EC2::SecurityGroupIngress')) as Array<{
      Properties: { GroupId: unknown; SourceSecurityGroupId?: unknown; CidrIp?: string; FromPort: number };
    }>;
    const toEfs = ingress.filter((r) => JSON.stringify(r.Properties.GroupId).includes(id(efsSg)));
    const sources = toEfs.map((r) => JSON.stringify(r.Properties.SourceSecurityGroupId)).sort();
    const training = built.platform.training;
    const notebookSg = training.node.findChild('NotebookSecurityGroup');
    expect(sources).toEqual(
      [id(training.jobSecurityGroup), id(notebookSg)]
        .map((sg) => JSON.stringify({ 'Fn::GetAtt': [sg, 'GroupId'] }))
        .sort(),
    );
    expect(toEfs.every((r) => r.Properties.FromPort === 2049 && r.Properties.CidrIp === undefined)).toBe(
      true,
    );
    const efsSgProps = platform.toJSON().Resources[id(efsSg)] as {
      Properties: { SecurityGroupIngress?: unknown };
    };
    expect(efsSgProps.Properties.SecurityGroupIngress).toBeUndefined();
  });
});

describe('training', () => {
  it('lets the SageMaker role read data and write models but never delete', () => {
    const statements = roleStatements(platform, built.platform.training.role);
    const actions = actionsOf(statements);
    expect(actions.some((a) => grants(a, 's3:PutObject'))).toBe(true);
    expect(actions.some((a) => grants(a, 's3:DeleteObject'))).toBe(false);
    const dataArn = { 'Fn::GetAtt': [id(built.platform.store.dataBucket), 'Arn'] };
    const writesData = statements.some(
      (s) =>
        actionsOf([s]).some((a) => grants(a, 's3:PutObject')) &&
        JSON.stringify(s.Resource).includes(JSON.stringify(dataArn)),
    );
    expect(writesData).toBe(false);
  });

  it('gives the notebook its own role, never the training jobs’ role', () => {
    const notebookRole = built.platform.training.notebookRole!;
    platform.hasResourceProperties('AWS::SageMaker::NotebookInstance', {
      RoleArn: { 'Fn::GetAtt': [id(notebookRole), 'Arn'] },
    });
    expect(id(notebookRole)).not.toBe(id(built.platform.training.role));
  });

  describe('who may write what in the models bucket', () => {
    // Test ARNs for the two buckets; the models bucket's name is the one the rollout rule watches.
    const arns = () => ({
      [id(built.platform.store.modelsBucket)]: `arn:aws:s3:::${MODELS_BUCKET}`,
      [id(built.platform.store.dataBucket)]: 'arn:aws:s3:::data',
    });
    const objectArn = (key: string) => `arn:aws:s3:::${MODELS_BUCKET}/${key}`;
    const startsRollout = (key: string) =>
      matchesEventPattern(modelUploadEventPattern(MODELS_BUCKET), modelEvent({ key }));
    const jobOutput = 'slipway-mnist-1/output/model.tar.gz';

    it('lets training jobs put their model where it starts a rollout', () => {
      expect(startsRollout(jobOutput)).toBe(true);
      const jobs = roleStatements(platform, built.platform.training.role);
      expect(allows(jobs, 's3:PutObject', objectArn(jobOutput), arns())).toBe(true);
    });

    it('lets the notebook put only under the scratch prefix, and no key that starts a rollout', () => {
      const notebook = roleStatements(platform, built.platform.training.notebookRole!);
      const put = (key: string) => allows(notebook, 's3:PutObject', objectArn(key), arns());
      for (const key of [
        jobOutput,
        'model.tar.gz',
        'checkpoints/slipway-mnist-1/weights.bin',
        `${NOTEBOOK_SCRATCH_PREFIX}exp-1/model.tar.gz`,
        `${NOTEBOOK_SCRATCH_PREFIX}exp-1/mymodel.tar.gz`,
        `${NOTEBOOK_SCRATCH_PREFIX}model.tar.gz`,
      ]) {
        expect(put(key), key).toBe(false);
      }
      const scratch = [
        `${NOTEBOOK_SCRATCH_PREFIX}exp-1/model.onnx`,
        `${NOTEBOOK_SCRATCH_PREFIX}exp-1/model.tar.gz.bak`,
        `${NOTEBOOK_SCRATCH_PREFIX}exp-1/Model.tar.gz`,
      ];
      for (const key of scratch) {
        expect(put(key), key).toBe(true);
        expect(startsRollout(key), key).toBe(false);
      }
      expect(allows(notebook, 's3:PutObject', 'arn:aws:s3:::data/x.csv', arns())).toBe(false);
    });

    it('lets the notebook delete only its scratch files', () => {
      const notebook = roleStatements(platform, built.platform.training.notebookRole!);
      expect(allows(notebook, 's3:DeleteObject', objectArn(`${NOTEBOOK_SCRATCH_PREFIX}a.csv`), arns())).toBe(
        true,
      );
      for (const action of ['s3:DeleteObject', 's3:DeleteObjectVersion']) {
        expect(allows(notebook, action, objectArn(jobOutput), arns()), action).toBe(false);
      }
    });

    it('lets the notebook read data and models and mount the shared EFS for writing, as jobs do', () => {
      const notebook = roleStatements(platform, built.platform.training.notebookRole!);
      expect(allows(notebook, 's3:GetObject', objectArn(jobOutput), arns())).toBe(true);
      expect(allows(notebook, 's3:GetObject', 'arn:aws:s3:::data/train/x.csv', arns())).toBe(true);
      const efsArn = 'arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-1';
      const efs = { ...arns(), [id(built.platform.fileSystem.fileSystem)]: efsArn };
      for (const action of ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite']) {
        expect(allows(notebook, action, efsArn, efs), action).toBe(true);
      }
    });

    it('gives the notebook no way to launch jobs, pass a role or pull images', () => {
      const actions = actionsOf(roleStatements(platform, built.platform.training.notebookRole!));
      for (const action of [
        'iam:PassRole',
        'sagemaker:CreateTrainingJob',
        'ecr:BatchGetImage',
        'sts:AssumeRole',
      ]) {
        expect(
          actions.filter((a) => grants(a, action)),
          action,
        ).toEqual([]);
      }
    });
  });

  it('trusts only SageMaker', () => {
    platform.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'sagemaker.amazonaws.com' } })],
      },
    });
  });

  it('runs the notebook in a private subnet without internet or root, on an encrypted volume', () => {
    platform.hasResourceProperties('AWS::SageMaker::NotebookInstance', {
      DirectInternetAccess: 'Disabled',
      RootAccess: 'Disabled',
      KmsKeyId: Match.anyValue(),
      SubnetId: Match.anyValue(),
      InstanceType: 'ml.t3.medium',
    });
  });

  it('mounts EFS from the notebook lifecycle config, base64-encoded', () => {
    const config = Object.values(
      platform.findResources('AWS::SageMaker::NotebookInstanceLifecycleConfig'),
    )[0] as {
      Properties: { OnStart: Array<{ Content: { 'Fn::Base64': unknown } }> };
    };
    const script = JSON.stringify(config.Properties.OnStart[0]!.Content['Fn::Base64']);
    expect(script).toContain('mount -t efs');
    expect(script).toContain(id(built.platform.fileSystem.fileSystem));
  });

  it('pulls only from the training repository', () => {
    const statements = roleStatements(platform, built.platform.training.role);
    const pull = statements.find((s) => actionsOf([s]).includes('ecr:BatchGetImage'));
    expect(JSON.stringify(pull?.Resource)).toContain(`repository/${IMAGE_REPOSITORIES.training}`);
    expect(JSON.stringify(pull?.Resource)).not.toContain(IMAGE_REPOSITORIES.inference);
  });
});

describe('outputs', () => {
  it('exports every shared output key as the exact logical ID', () => {
    const outputs = Object.keys(platform.toJSON().Outputs as Record<string, unknown>);
    expect(outputs.sort()).toEqual(Object.values(STACK_OUTPUTS).sort());
  });

  it('joins the training subnets with commas', () => {
    platform.hasOutput(STACK_OUTPUTS.trainingSubnets, { Value: { 'Fn::Join': [',', Match.anyValue()] } });
  });

  it('names the log group the rollout function writes to, where deploy --wait reads outcomes', () => {
    platform.hasOutput(STACK_OUTPUTS.rolloutLogGroup, {
      Value: { Ref: id(built.platform.rollout.logGroup) },
    });
    platform.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      LoggingConfig: { LogGroup: { Ref: id(built.platform.rollout.logGroup) } },
    });
  });
});

describe('image registry', () => {
  it('creates both repositories with scan on push, immutable tags and a lifecycle rule', () => {
    for (const name of Object.values(IMAGE_REPOSITORIES)) {
      registry.hasResourceProperties('AWS::ECR::Repository', {
        RepositoryName: name,
        ImageScanningConfiguration: { ScanOnPush: true },
        ImageTagMutability: 'IMMUTABLE',
        LifecyclePolicy: { LifecyclePolicyText: Match.stringLikeRegexp('"countNumber":20') },
      });
    }
  });
});

describe('inference service', () => {
  it('enables Container Insights on the cluster', () => {
    platform.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  it('runs the inference container on 8080 with MODEL_URI=none (the no-model first deployment)', () => {
    platform.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '1024',
      Memory: '2048',
      ContainerDefinitions: [
        Match.objectLike({
          Name: INFERENCE_CONTAINER_NAME,
          PortMappings: [Match.objectLike({ ContainerPort: 8080 })],
          Environment: Match.arrayWith([
            { Name: ENV.modelUri, Value: NO_MODEL_URI },
            { Name: ENV.port, Value: '8080' },
          ]),
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
        }),
      ],
    });
  });

  it('keeps container logs for the configured retention', () => {
    const logGroup = built.platform.inference.node.findChild('Logs');
    const resource = platform.toJSON().Resources[id(logGroup)] as { Properties: { RetentionInDays: number } };
    expect(resource.Properties.RetentionInDays).toBe(30);
  });

  it('runs the image tag from the config', () => {
    const task = Object.values(platform.findResources('AWS::ECS::TaskDefinition'))[0];
    expect(JSON.stringify(task)).toContain(`${IMAGE_REPOSITORIES.inference}:${TEST_CONFIG.imageTag}`);
  });

  it('gives the task role no way to write or delete in the models bucket', () => {
    const actions = actionsOf(roleStatements(platform, built.platform.inference.taskRole));
    expect(actions.length).toBeGreaterThan(0);
    for (const write of ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutBucketPolicy']) {
      expect(
        actions.filter((a) => grants(a, write)),
        write,
      ).toEqual([]);
    }
    expect(actions.some((a) => grants(a, 's3:GetObject'))).toBe(true);
  });

  it('puts the ALB on the internal scheme by default', () => {
    platform.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internal' });
  });

  it('checks readiness quickly and drains for longer than the server shutdown', () => {
    platform.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: READINESS_PATH,
      HealthCheckIntervalSeconds: 10,
      HealthCheckTimeoutSeconds: 5,
      HealthyThresholdCount: 2,
      Port: 8080,
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '30' }]),
    });
  });

  it('rolls back failed deployments with the circuit breaker, 100/200 percent', () => {
    platform.hasResourceProperties('AWS::ECS::Service', {
      DeploymentConfiguration: {
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
      },
    });
  });

  it('gives new tasks a grace period that covers model loading', () => {
    platform.hasResourceProperties('AWS::ECS::Service', { HealthCheckGracePeriodSeconds: 120 });
  });

  it('leaves the task count to autoscaling, so a deploy never resets a scaled-out service', () => {
    platform.hasResourceProperties('AWS::ECS::Service', { DesiredCount: Match.absent() });
    platform.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ScalableDimension: 'ecs:service:DesiredCount',
      MinCapacity: 2,
    });
  });

  it('scales on CPU and on requests per target', () => {
    const metrics = Object.values(platform.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')).map(
      (p) =>
        (
          p as {
            Properties: {
              TargetTrackingScalingPolicyConfiguration: {
                PredefinedMetricSpecification: { PredefinedMetricType: string };
              };
            };
          }
        ).Properties.TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification
          .PredefinedMetricType,
    );
    expect(metrics.sort()).toEqual(['ALBRequestCountPerTarget', 'ECSServiceAverageCPUUtilization']);
    platform.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 2,
      MaxCapacity: 4,
    });
  });
});

describe('rollout trigger', () => {
  it('builds the rule pattern from the shared constant', () => {
    const rule = Object.values(platform.findResources('AWS::Events::Rule'))[0] as {
      Properties: { EventPattern: unknown };
    };
    const marker = '__MODELS_BUCKET__';
    const expected = JSON.parse(
      JSON.stringify(modelUploadEventPattern(marker)).replace(
        JSON.stringify(marker),
        JSON.stringify({ Ref: id(built.platform.store.modelsBucket) }),
      ),
    ) as unknown;
    expect(rule.Properties.EventPattern).toEqual(expected);
  });

  it('targets the Lambda with explicit retries, event age and an SQS DLQ', () => {
    platform.hasResourceProperties('AWS::Events::Rule', {
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [id(built.platform.rollout.function), 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [id(built.platform.rollout.deadLetterQueue), 'Arn'] } },
        }),
      ],
    });
  });

  it('runs on the newest Node.js runtime the CDK knows, with reserved concurrency 1', () => {
    const newest = Object.keys(lambda.Runtime)
      .map((k) => /^NODEJS_(\d+)_X$/.exec(k)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => b - a)[0];
    platform.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: `nodejs${newest}.x`,
      ReservedConcurrentExecutions: 1,
      Handler: 'index.handler',
    });
  });

  it('explains at synth why a deploy to an account with a concurrency limit of 10 fails, and the way out', () => {
    Annotations.fromStack(built.platform).hasInfo(
      `/${built.platform.stackName}/Rollout/Function`,
      SERIAL_ROLLOUTS_NEED_CONCURRENCY,
    );
    expect(SERIAL_ROLLOUTS_NEED_CONCURRENCY).toContain(
      "decreases account's UnreservedConcurrentExecution below its minimum value of [10]",
    );
    expect(SERIAL_ROLLOUTS_NEED_CONCURRENCY).toContain('-c serialRollouts=false');
    expect(SERIAL_ROLLOUTS_NEED_CONCURRENCY).toContain('set "serialRollouts": true in cdk.json');
    Annotations.fromStack(built.platform).hasNoWarning('*', ROLLOUTS_NOT_SERIAL);
  });

  it('configures the function from the shared ENV keys', () => {
    platform.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          [ENV.cluster]: { Ref: id(built.platform.inference.cluster) },
          [ENV.service]: Match.anyValue(),
          [ENV.modelsBucket]: { Ref: id(built.platform.store.modelsBucket) },
          [ENV.container]: INFERENCE_CONTAINER_NAME,
        }),
      },
    });
  });

  it('sends failed async invocations to an on-failure queue', () => {
    platform.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
      DestinationConfig: {
        OnFailure: { Destination: { 'Fn::GetAtt': [id(built.platform.rollout.failureQueue), 'Arn'] } },
      },
    });
  });

  it('encrypts both queues and requires TLS on them', () => {
    const queues = Object.values(platform.findResources('AWS::SQS::Queue')) as Array<{
      Properties: { SqsManagedSseEnabled?: boolean };
    }>;
    expect(queues).toHaveLength(2);
    expect(queues.every((q) => q.Properties.SqsManagedSseEnabled === true)).toBe(true);
    const policies = Object.values(platform.findResources('AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(2);
    for (const p of policies) expect(JSON.stringify(p)).toContain('"aws:SecureTransport":"false"');
  });

  it('alarms on DLQ depth, failure-queue depth and function errors', () => {
    const resources = platform.findResources('AWS::CloudWatch::Alarm') as Record<
      string,
      { Properties: { MetricName: string; Threshold: number } }
    >;
    const alarms = built.platform.rollout.alarms.map((a) => resources[id(a)]!);
    expect(alarms.map((a) => a.Properties.MetricName).sort()).toEqual([
      'ApproximateNumberOfMessagesVisible',
      'ApproximateNumberOfMessagesVisible',
      'Errors',
    ]);
    expect(alarms.every((a) => a.Properties.Threshold === 1)).toBe(true);
  });

  it('lets the function update only its own service', () => {
    const statements = roleStatements(platform, built.platform.rollout.function.role!);
    const update = statements.filter((s) => actionsOf([s]).some((a) => grants(a, 'ecs:UpdateService')));
    expect(update).toHaveLength(1);
    expect(update[0]!.Resource).toEqual({ Ref: id(built.platform.inference.service) });
  });

  it('may tag only revisions of its own task-definition family: while registering them, or with their deployment alone', () => {
    const statements = roleStatements(platform, built.platform.rollout.function.role!);
    const tag = statements.filter((s) => actionsOf([s]).some((a) => grants(a, 'ecs:TagResource')));
    expect(tag).toHaveLength(2);
    const family = built.platform.inference.service.taskDefinition.family;
    for (const statement of tag) {
      expect(JSON.stringify(statement.Resource)).toContain(`:task-definition/${family}:*`);
    }
    expect(tag.map((statement) => statement.Condition)).toEqual([
      { StringEquals: { 'ecs:CreateAction': 'RegisterTaskDefinition' } },
      { 'ForAllValues:StringEquals': { 'aws:TagKeys': [REVISION_TAGS.deployment] } },
    ]);
  });

  it('lets the function read the models bucket, to HEAD an upload whose event key reads two ways, and write nothing', () => {
    const statements = roleStatements(platform, built.platform.rollout.function.role!);
    const models = JSON.stringify({ 'Fn::GetAtt': [id(built.platform.store.modelsBucket), 'Arn'] });
    const reads = statements.filter((s) => actionsOf([s]).some((a) => grants(a, 's3:GetObjectVersion')));
    expect(reads).toHaveLength(1);
    expect(JSON.stringify(reads[0]!.Resource)).toContain(models);
    expect(actionsOf(reads).some((a) => grants(a, 's3:ListBucket'))).toBe(true);
    for (const write of ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutBucketPolicy']) {
      expect(
        actionsOf(statements).filter((a) => grants(a, write)),
        write,
      ).toEqual([]);
    }
  });

  it('passes only the two task roles, and only to ECS tasks', () => {
    const statements = roleStatements(platform, built.platform.rollout.function.role!);
    const pass = statements.filter((s) => actionsOf([s]).some((a) => grants(a, 'iam:PassRole')));
    expect(pass).toHaveLength(1);
    const passed = (pass[0]!.Resource as unknown[]).map((r) => JSON.stringify(r)).sort();
    expect(passed).toEqual(
      [built.platform.inference.taskRole, built.platform.inference.executionRole]
        .map((r) => JSON.stringify({ 'Fn::GetAtt': [id(r), 'Arn'] }))
        .sort(),
    );
    expect(pass[0]!.Condition).toEqual({
      StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
    });
  });
});

describe('alarms', () => {
  type AlarmResource = {
    Properties: {
      MetricName: string;
      Namespace: string;
      AlarmActions?: unknown[];
      OKActions?: unknown[];
      Dimensions?: Array<{ Name: string; Value: unknown }>;
    };
  };
  const alarms = () => platform.findResources('AWS::CloudWatch::Alarm') as Record<string, AlarmResource>;

  it('sends every alarm of the stack, on ALARM and on OK, to the one alarm topic', () => {
    const topic = { Ref: id(built.platform.alarms.topic) };
    const all = Object.values(alarms());
    expect(all.length).toBeGreaterThanOrEqual(6);
    for (const alarm of all) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
      expect(alarm.Properties.OKActions).toEqual([topic]);
    }
    platform.hasOutput(STACK_OUTPUTS.alarmTopicArn, { Value: topic });
  });

  it('watches the inference service: task 5xx and unhealthy targets on its target group, 5xx of the load balancer', () => {
    const service = built.platform.alarms.serviceAlarms.map((a) => alarms()[id(a)]!.Properties);
    expect(service.map((p) => `${p.Namespace} ${p.MetricName}`).sort()).toEqual([
      'AWS/ApplicationELB HTTPCode_ELB_5XX_Count',
      'AWS/ApplicationELB HTTPCode_Target_5XX_Count',
      'AWS/ApplicationELB UnHealthyHostCount',
    ]);
    const dimensionsOf = (metric: string) =>
      JSON.stringify(service.find((p) => p.MetricName === metric)!.Dimensions);
    expect(dimensionsOf('UnHealthyHostCount')).toContain(id(built.platform.inference.targetGroup));
    expect(dimensionsOf('HTTPCode_Target_5XX_Count')).toContain(id(built.platform.inference.targetGroup));
    expect(dimensionsOf('HTTPCode_ELB_5XX_Count')).toContain(id(built.platform.inference.loadBalancer));
  });

  it('names the path the target group really checks in the unhealthy-targets alarm', () => {
    const unhealthy = built.platform.alarms.node.findChild('UnhealthyTargets');
    const description = (
      platform.toJSON().Resources[id(unhealthy)] as { Properties: { AlarmDescription: string } }
    ).Properties.AlarmDescription;
    expect(description).toContain(`GET ${READINESS_PATH}`);
    platform.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: READINESS_PATH,
    });
  });

  it('encrypts the topic with a key CloudWatch may use (the AWS-managed SNS key would drop alarms)', () => {
    const key = id(built.platform.alarms.topic.masterKey!);
    platform.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [key, 'Arn'] },
    });
    platform.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
  });

  it('subscribes the configured alarm emails, and none by default', () => {
    expect(platform.findResources('AWS::SNS::Subscription')).toEqual({});
    const outdir = tempOutdir();
    const app = buildSlipwayApp({
      // No bundling: this synthesis is only about the subscriptions.
      context: {
        ...cdkJsonContext(),
        ...TEST_CONFIG,
        alarmEmails: 'ops@example.com,ml@example.com',
        'aws:cdk:bundling-stacks': [],
      },
      nag: false,
      outdir,
    });
    onTestFinished(() => rmSync(outdir, { recursive: true, force: true }));
    const subscriptions = Object.values(
      Template.fromStack(app.platform!).findResources('AWS::SNS::Subscription'),
    ) as Array<{ Properties: { Protocol: string; Endpoint: string } }>;
    expect(subscriptions.map((s) => `${s.Properties.Protocol} ${s.Properties.Endpoint}`).sort()).toEqual([
      'email ml@example.com',
      'email ops@example.com',
    ]);
  });
});

describe('docs site', () => {
  it('keeps the docs bucket private with no website hosting', () => {
    const bucket = platform.toJSON().Resources[id(built.platform.docs.bucket)] as {
      Properties: Record<string, unknown>;
    };
    expect(bucket.Properties.WebsiteConfiguration).toBeUndefined();
  });

  it('reaches the bucket through Origin Access Control', () => {
    platform.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
    platform.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Origins: [
          Match.objectLike({
            OriginAccessControlId: { 'Fn::GetAtt': [Match.anyValue(), 'Id'] },
            S3OriginConfig: { OriginAccessIdentity: '' },
          }),
        ],
      }),
    });
  });

  it('lets only this distribution read the docs bucket', () => {
    const policies = Object.values(platform.findResources('AWS::S3::BucketPolicy')) as Array<{
      Properties: { Bucket: { Ref: string }; PolicyDocument: { Statement: Statement[] } };
    }>;
    const docsPolicy = policies.find((p) => p.Properties.Bucket.Ref === id(built.platform.docs.bucket))!;
    const allows = docsPolicy.Properties.PolicyDocument.Statement.filter((s) => s.Effect === 'Allow');
    expect(allows).toHaveLength(1);
    expect(allows[0]!.Principal).toEqual({ Service: 'cloudfront.amazonaws.com' });
    expect(allows[0]!.Action).toBe('s3:GetObject');
    const distributionArn = JSON.stringify(allows[0]!.Condition?.StringEquals?.['AWS:SourceArn']);
    expect(distributionArn).toContain(':distribution/');
    expect(distributionArn).toContain(JSON.stringify({ Ref: id(built.platform.docs.distribution) }));
  });

  it('ships the tested URL-rewrite function on viewer requests', () => {
    platform.hasResourceProperties('AWS::CloudFront::Function', {
      FunctionCode: URL_REWRITE_SOURCE,
      FunctionConfig: Match.objectLike({ Runtime: 'cloudfront-js-2.0' }),
    });
    platform.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultCacheBehavior: Match.objectLike({
          ViewerProtocolPolicy: 'redirect-to-https',
          FunctionAssociations: [Match.objectLike({ EventType: 'viewer-request' })],
        }),
      }),
    });
  });

  it('sends HSTS, CSP, nosniff and frame options', () => {
    platform.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: Match.objectLike({
        SecurityHeadersConfig: Match.objectLike({
          StrictTransportSecurity: Match.objectLike({ AccessControlMaxAgeSec: 63072000 }),
          ContentSecurityPolicy: Match.objectLike({
            ContentSecurityPolicy: Match.stringLikeRegexp("default-src 'self'"),
          }),
          ContentTypeOptions: { Override: true },
          FrameOptions: { FrameOption: 'DENY', Override: true },
        }),
      }),
    });
  });

  it('logs requests to the access-log bucket', () => {
    platform.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Logging: {
          Bucket: { 'Fn::GetAtt': [id(built.platform.store.accessLogsBucket), 'RegionalDomainName'] },
          Prefix: 'cloudfront/',
        },
      }),
    });
  });
});

describe('GitHub OIDC', () => {
  const subject = `repo:${TEST_CONFIG.githubOwner}/${TEST_CONFIG.githubRepo}:ref:refs/heads/main`;

  it('creates the GitHub OIDC provider in the registry stack', () => {
    registry.hasResourceProperties('AWS::IAM::OIDCProvider', {
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
    });
    platform.resourceCountIs('AWS::IAM::OIDCProvider', 0);
  });

  it('trusts exactly the repository on main, with StringEquals on aud and sub, for one hour (launch-training: six)', () => {
    const roles = [
      ...Object.values(registry.findResources('AWS::IAM::Role')),
      ...Object.values(platform.findResources('AWS::IAM::Role')),
    ] as Array<{
      Properties: {
        RoleName?: string;
        MaxSessionDuration?: number;
        AssumeRolePolicyDocument: { Statement: Statement[] };
      };
    }>;
    const github = roles.filter((r) =>
      (Object.values(GITHUB_OIDC_ROLES) as string[]).includes(r.Properties.RoleName ?? ''),
    );
    expect(github.map((r) => r.Properties.RoleName).sort()).toEqual(Object.values(GITHUB_OIDC_ROLES).sort());
    for (const role of github) {
      expect(role.Properties.MaxSessionDuration, role.Properties.RoleName).toBe(
        role.Properties.RoleName === GITHUB_OIDC_ROLES.launchTraining ? 6 * 3600 : 3600,
      );
      const trust = role.Properties.AssumeRolePolicyDocument.Statement;
      expect(trust).toHaveLength(1);
      expect(trust[0]!.Action).toBe('sts:AssumeRoleWithWebIdentity');
      expect(trust[0]!.Condition).toEqual({
        StringEquals: {
          'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
          'token.actions.githubusercontent.com:sub': subject,
        },
      });
      expect(JSON.stringify(trust)).not.toContain('*');
    }
  });

  it('lets deploy-infra only assume the CDK bootstrap roles', () => {
    const statements = roleStatements(registry, built.registry.deployInfraRole);
    expect(actionsOf(statements).sort()).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    const resources = JSON.stringify(statements[0]!.Resource);
    for (const role of ['deploy-role', 'file-publishing-role', 'image-publishing-role', 'lookup-role']) {
      expect(resources).toContain(`:role/cdk-hnb659fs-${role}-`);
    }
    expect(resources).not.toContain('*');
  });

  it('lets publish-images push to the two repositories only', () => {
    const statements = roleStatements(registry, built.registry.publishImagesRole);
    const push = statements.filter((s) => actionsOf([s]).includes('ecr:PutImage'));
    const repoIds = [built.registry.images.inference, built.registry.images.training].map((r) => ({
      'Fn::GetAtt': [id(r), 'Arn'],
    }));
    expect(push.flatMap((s) => s.Resource as unknown[])).toEqual(repoIds);
    const anywhere = statements.filter((s) => s.Resource === '*');
    expect(actionsOf(anywhere)).toEqual(['ecr:GetAuthorizationToken']);
  });

  it('lets publish-images look up existing image tags in the two repositories only (deploy.yml skips pushed tags)', () => {
    const statements = roleStatements(registry, built.registry.publishImagesRole);
    const describe = statements.filter((s) => actionsOf([s]).includes('ecr:DescribeImages'));
    const repoIds = [built.registry.images.inference, built.registry.images.training].map((r) => ({
      'Fn::GetAtt': [id(r), 'Arn'],
    }));
    expect(
      describe.flatMap((s): unknown[] => (Array.isArray(s.Resource) ? s.Resource : [s.Resource])),
    ).toEqual(repoIds);
  });

  it('lets publish-docs invalidate only the docs distribution', () => {
    const statements = roleStatements(platform, built.platform.publishDocsRole);
    const invalidate = statements.filter((s) => actionsOf([s]).includes('cloudfront:CreateInvalidation'));
    expect(invalidate).toHaveLength(1);
    expect(JSON.stringify(invalidate[0]!.Resource)).toContain(id(built.platform.docs.distribution));
    expect(actionsOf(statements).some((a) => grants(a, 'sagemaker:CreateTrainingJob'))).toBe(false);
  });

  it('lets publish-docs do what docs.yml and its asset sweep do, in the docs bucket only', () => {
    const statements = roleStatements(platform, built.platform.publishDocsRole);
    const bucket = id(built.platform.docs.bucket);
    for (const action of [
      's3:ListBucket',
      's3:PutObject',
      's3:GetObjectTagging',
      's3:PutObjectTagging',
      's3:DeleteObject',
    ]) {
      const granting = statements.filter((s) => actionsOf([s]).some((a) => grants(a, action)));
      expect(granting.length, action).toBeGreaterThan(0);
      for (const s of granting) {
        const resources = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
        for (const r of resources) expect(JSON.stringify(r), action).toContain(bucket);
      }
    }
  });

  it('lets launch-training create only slipway-* jobs and pass only the training role to SageMaker', () => {
    const statements = roleStatements(platform, built.platform.launchTrainingRole);
    const jobs = statements.find((s) => actionsOf([s]).includes('sagemaker:CreateTrainingJob'))!;
    expect(JSON.stringify(jobs.Resource)).toContain(':training-job/slipway-*');
    const pass = statements.find((s) => actionsOf([s]).includes('iam:PassRole'))!;
    expect(pass.Resource).toEqual({ 'Fn::GetAtt': [id(built.platform.training.role), 'Arn'] });
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } });
  });

  it('lets restore-model invoke the rollout function (no version of it) and read the stack, nothing else', () => {
    const statements = roleStatements(platform, built.platform.restoreModelRole);
    expect(statements.map((s) => [actionsOf([s]), s.Resource])).toEqual([
      [['lambda:InvokeFunction'], { 'Fn::GetAtt': [id(built.platform.rollout.function), 'Arn'] }],
      [['cloudformation:DescribeStacks'], { Ref: 'AWS::StackId' }],
    ]);
    platform.hasOutput(STACK_OUTPUTS.rolloutFunction, {
      Value: { Ref: id(built.platform.rollout.function) },
    });
  });
});

/** Synthesize the whole app with cdk-nag and extra config, without bundling the Lambda. */
function synthVariant(context: Record<string, unknown>): { app: SlipwayApp; findings: Finding[] } {
  const dir = tempOutdir();
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const app = buildSlipwayApp({
    context: { ...cdkJsonContext(), ...TEST_CONFIG, ...context, 'aws:cdk:bundling-stacks': [] },
    outdir: dir,
  });
  return { app, findings: synthFindings(app.app) };
}

describe('config variants', () => {
  it('synthesizes with a region set, with no cdk-nag finding, and then logs ALB access', () => {
    const { app, findings: variantFindings } = synthVariant({ region: 'us-east-1' });
    expect(variantFindings).toEqual([]);
    const template = Template.fromStack(app.platform!);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: { Ref: id(app.platform!.store.accessLogsBucket) } },
      ]),
    });
  });

  it('synthesizes with natStrategy=endpoints, with no cdk-nag finding', () => {
    const { app, findings: variantFindings } = synthVariant({ natStrategy: 'endpoints' });
    expect(variantFindings).toEqual([]);
    Template.fromStack(app.platform!).resourceCountIs('AWS::EC2::NatGateway', 0);
  });

  it('deploys both stacks through the bootstrap roles of the configured cdkQualifier', () => {
    const { app, findings: variantFindings } = synthVariant({ cdkQualifier: 'stage2' });
    expect(variantFindings).toEqual([]);
    const assembly = app.app.synth();
    for (const stack of [app.registry, app.platform!]) {
      const artifact = assembly.getStackArtifact(stack.artifactId);
      expect(artifact.assumeRoleArn, stack.stackName).toContain(':role/cdk-stage2-deploy-role-');
      expect(artifact.cloudFormationExecutionRoleArn, stack.stackName).toContain(
        ':role/cdk-stage2-cfn-exec-role-',
      );
      expect(Template.fromStack(stack).toJSON().Parameters.BootstrapVersion.Default).toBe(
        '/cdk-bootstrap/stage2/version',
      );
    }
    const assumable = JSON.stringify(
      statementsOfRole(Template.fromStack(app.registry), id(app.registry.deployInfraRole))[0]!.Resource,
    );
    expect(assumable).toContain(':role/cdk-stage2-deploy-role-');
    expect(assumable).not.toContain('hnb659fs');
  });

  it('gives a second stage its own role, repository and bucket names, so it can share the account', () => {
    const { app, findings: variantFindings } = synthVariant({ stackName: 'SlipwayStaging' });
    expect(variantFindings).toEqual([]);
    expect([app.registry.stackName, app.platform!.stackName]).toEqual([
      'SlipwayStagingRegistry',
      'SlipwayStaging',
    ]);
    const stageRegistry = Template.fromStack(app.registry);
    const stagePlatform = Template.fromStack(app.platform!);
    const roleNames = [stageRegistry, stagePlatform].flatMap((t) =>
      Object.values(t.findResources('AWS::IAM::Role'))
        .map((r) => (r as { Properties: { RoleName?: string } }).Properties.RoleName)
        .filter((n): n is string => n !== undefined),
    );
    expect(roleNames.sort()).toEqual(
      Object.values(GITHUB_OIDC_ROLES)
        .map((r) => `${r}-slipwaystaging`)
        .sort(),
    );
    for (const name of Object.values(IMAGE_REPOSITORIES)) {
      stageRegistry.hasResourceProperties('AWS::ECR::Repository', {
        RepositoryName: `${name}-slipwaystaging`,
      });
    }
    const task = Object.values(stagePlatform.findResources('AWS::ECS::TaskDefinition'))[0];
    expect(JSON.stringify(task)).toContain(
      `${IMAGE_REPOSITORIES.inference}-slipwaystaging:${TEST_CONFIG.imageTag}`,
    );
    expect(JSON.stringify(stagePlatform.toJSON().Outputs[STACK_OUTPUTS.trainingImageUri])).toContain(
      `${IMAGE_REPOSITORIES.training}-slipwaystaging:`,
    );
    // Bucket names are global: CloudFormation names the stage's buckets (from the stack name).
    for (const bucket of Object.values(stagePlatform.findResources('AWS::S3::Bucket'))) {
      expect((bucket as { Properties: { BucketName?: unknown } }).Properties.BucketName).toBeUndefined();
    }
  });

  it('with githubOidcSubject=workflow, lets each role trust only its workflow files on main, by exact sub', () => {
    const { app, findings: variantFindings } = synthVariant({ githubOidcSubject: 'workflow' });
    expect(variantFindings).toEqual([]);
    const roles = [Template.fromStack(app.registry), Template.fromStack(app.platform!)].flatMap(
      (t) =>
        Object.values(t.findResources('AWS::IAM::Role')) as Array<{
          Properties: { RoleName?: string; AssumeRolePolicyDocument: { Statement: Statement[] } };
        }>,
    );
    const trust = new Map<string, Statement[]>();
    for (const { Properties: p } of roles) {
      if (p.RoleName?.startsWith('slipway-github-'))
        trust.set(p.RoleName, p.AssumeRolePolicyDocument.Statement);
    }
    const onMain = (file: string) =>
      `repo:acme/slipway:ref:refs/heads/main:job_workflow_ref:acme/slipway/.github/workflows/${file}@refs/heads/main`;
    const expected = {
      'slipway-github-deploy-infra': onMain('deploy.yml'),
      'slipway-github-publish-images': onMain('deploy.yml'),
      'slipway-github-publish-docs': onMain('docs.yml'),
      'slipway-github-launch-training': onMain('train.yml'),
      'slipway-github-restore-model': onMain('deploy.yml'),
    };
    expect([...trust.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [role, sub] of Object.entries(expected)) {
      const statements = trust.get(role)!;
      expect(statements, role).toHaveLength(1);
      expect(statements[0]!.Action, role).toBe('sts:AssumeRoleWithWebIdentity');
      expect(statements[0]!.Condition, role).toEqual({
        StringEquals: {
          'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
          'token.actions.githubusercontent.com:sub': sub,
        },
      });
    }
  });

  it('keeps the fixed bucket names of the default stack', () => {
    const names = Object.values(platform.findResources('AWS::S3::Bucket')).map((b) =>
      JSON.stringify((b as { Properties: { BucketName?: unknown } }).Properties.BucketName),
    );
    for (const prefix of [
      'slipway-access-logs-',
      'slipway-data-',
      'sagemaker-shared-models-',
      'slipway-docs-',
    ]) {
      expect(
        names.filter((n) => n.includes(`"${prefix}"`)),
        prefix,
      ).toHaveLength(1);
    }
  });

  it('says nothing about concurrency once serialRollouts is set to true, and still reserves 1 for the rollout', () => {
    const { app, findings: variantFindings } = synthVariant({ serialRollouts: 'true' });
    expect(variantFindings).toEqual([]);
    Template.fromStack(app.platform!).hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      ReservedConcurrentExecutions: 1,
    });
    Annotations.fromStack(app.platform!).hasNoInfo('*', SERIAL_ROLLOUTS_NEED_CONCURRENCY);
    Annotations.fromStack(app.platform!).hasNoWarning('*', ROLLOUTS_NOT_SERIAL);
  });

  it('reserves no concurrency for the rollout with serialRollouts=false, says what that gives up, and passes cdk-nag', () => {
    const { app, findings: variantFindings } = synthVariant({ serialRollouts: 'false' });
    expect(variantFindings).toEqual([]);
    const template = Template.fromStack(app.platform!);
    const rollout = template.toJSON().Resources[id(app.platform!.rollout.function)] as {
      Properties: Record<string, unknown>;
    };
    expect(rollout.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
    Annotations.fromStack(app.platform!).hasWarning(
      `/${app.platform!.stackName}/Rollout`,
      Match.stringLikeRegexp('serialRollouts is false.*the last switch wins, even with the older model'),
    );
    Annotations.fromStack(app.platform!).hasNoInfo('*', SERIAL_ROLLOUTS_NEED_CONCURRENCY);
  });

  it('warns that a configured desiredCount is ignored, and still passes cdk-nag', () => {
    const { app, findings: variantFindings } = synthVariant({ desiredCount: '3', maxCount: '4' });
    expect(variantFindings).toEqual([]);
    Annotations.fromStack(app.platform!).hasWarning(
      '*',
      Match.stringLikeRegexp('desiredCount \\(3\\) is ignored'),
    );
    Template.fromStack(app.platform!).hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: Match.absent(),
    });
  });
});
