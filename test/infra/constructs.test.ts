import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it, vi } from 'vitest';
import { InfraConfigError } from '../../src/infra/config.ts';
import { GithubOidc } from '../../src/infra/github-oidc.ts';
import { ImageRegistry } from '../../src/infra/image-registry.ts';
import { InferenceService, queueEnvironment, threadEnvironment } from '../../src/infra/inference-service.ts';
import { DEFAULT_MAX_QUEUED_BYTES } from '../../src/serve/config.ts';
import { ENV } from '../../src/names.ts';
import { decideRollout } from '../../src/rollout/decision.ts';
import { pinnedModelFromEnvironment } from '../../src/rollout/pinned-model.ts';
import { MODELS_BUCKET, modelEvent } from '../rollout/fixtures.ts';
import { ModelStore } from '../../src/infra/model-store.ts';
import { Network, VPC_CIDR } from '../../src/infra/network.ts';
import { SharedFileSystem } from '../../src/infra/shared-file-system.ts';
import { buildSlipwayApp } from '../../src/infra/slipway-app.ts';
import { TrainingPlatform } from '../../src/infra/training-platform.ts';
import { cdkJsonContext, synthFindings, tempOutdir } from './fixtures.ts';

// The first synthesis in a fresh worker loads most of aws-cdk-lib: allow for a busy CI machine.
vi.setConfig({ testTimeout: 120_000 });

function stack(): Stack {
  return new Stack(new App({ context: cdkJsonContext(), outdir: tempOutdir() }), 'Test');
}

function inferenceProps(s: Stack): ConstructorParameters<typeof InferenceService>[2] {
  const vpc = new ec2.Vpc(s, 'Vpc', { maxAzs: 2 });
  return {
    vpc,
    subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    repository: ecr.Repository.fromRepositoryName(s, 'Repo', 'slipway-inference'),
    imageTag: 'abc123',
    modelsBucket: new s3.Bucket(s, 'Models'),
    family: 'test-inference',
  };
}

describe('Network', () => {
  it('replaces NAT with interface endpoints and isolated subnets in endpoints mode', () => {
    const s = stack();
    new Network(s, 'Net', { natStrategy: 'endpoints' });
    const t = Template.fromStack(s);
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.resourceCountIs('AWS::EC2::VPCEndpoint', 6);
    t.resourcePropertiesCountIs('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Interface' }, 5);
  });

  it('admits only HTTPS from the VPC range to the interface endpoints, through one security group', () => {
    const s = stack();
    new Network(s, 'Net', { natStrategy: 'endpoints' });
    const t = Template.fromStack(s);
    const endpoints = Object.values(
      t.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } }),
    ) as Array<{ Properties: { SecurityGroupIds: unknown[] } }>;
    const groups = new Set(endpoints.map((e) => JSON.stringify(e.Properties.SecurityGroupIds)));
    expect(groups.size).toBe(1);
    t.resourceCountIs('AWS::EC2::SecurityGroup', 1);
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [
        { CidrIp: VPC_CIDR, FromPort: 443, ToPort: 443, IpProtocol: 'tcp', Description: Match.anyValue() },
      ],
    });
  });

  it('runs one NAT gateway per AZ in nat-per-az mode', () => {
    const s = stack();
    new Network(s, 'Net', { natStrategy: 'nat-per-az' });
    Template.fromStack(s).resourceCountIs('AWS::EC2::NatGateway', 2);
  });
});

describe('InferenceService', () => {
  it('serves HTTPS only to the allowed CIDRs when internet-facing', () => {
    const s = stack();
    new InferenceService(s, 'Svc', {
      ...inferenceProps(s),
      internetFacing: true,
      certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
      allowedCidrs: ['203.0.113.0/24'],
    });
    const t = Template.fromStack(s);
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internet-facing' });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'HTTPS' });
    t.resourcePropertiesCountIs('AWS::ElasticLoadBalancingV2::Listener', { Port: 80 }, 0);
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '203.0.113.0/24', FromPort: 443 })],
    });
    expect(JSON.stringify(t.toJSON())).not.toContain('0.0.0.0/0"' + ',"Description":"Allow from anyone');
  });

  it('refuses to be internet-facing without a certificate', () => {
    const s = stack();
    expect(
      () =>
        new InferenceService(s, 'Svc', {
          ...inferenceProps(s),
          internetFacing: true,
          allowedCidrs: ['203.0.113.0/24'],
        }),
    ).toThrow(/certificateArn/);
  });

  it('refuses a minimum count above the maximum, naming the value', () => {
    const s = stack();
    expect(() => new InferenceService(s, 'Svc', { ...inferenceProps(s), minCount: 5, maxCount: 3 })).toThrow(
      /got 5/,
    );
  });

  it('sizes the server’s workers and threads from the task’s CPU units, not the host’s cores', () => {
    const s = stack();
    new InferenceService(s, 'Svc', { ...inferenceProps(s), cpu: 4096, memoryMiB: 8192 });
    Template.fromStack(s).hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: ENV.workers, Value: '4' },
            { Name: ENV.intraOpThreads, Value: '1' },
            { Name: ENV.idleIntraOpThreads, Value: '4' },
          ]),
        }),
      ],
    });
    expect(threadEnvironment(512)).toEqual({
      [ENV.workers]: '1',
      [ENV.intraOpThreads]: '1',
      [ENV.idleIntraOpThreads]: '1',
    });
    expect(threadEnvironment(2048)[ENV.workers]).toBe('2');
  });

  it('bounds the inputs waiting for a worker at an eighth of the task’s memory', () => {
    const s = stack();
    new InferenceService(s, 'Svc', { ...inferenceProps(s), cpu: 1024, memoryMiB: 4096 });
    Template.fromStack(s).hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([{ Name: ENV.maxQueuedBytes, Value: String(512 * 1024 * 1024) }]),
        }),
      ],
    });
    expect(queueEnvironment(2048)).toEqual({ [ENV.maxQueuedBytes]: String(DEFAULT_MAX_QUEUED_BYTES) });
  });

  it('keeps the rollout ordering record of the initial model, so an older event is still skipped after a code deploy', () => {
    const s = stack();
    const uri = 's3://acme-slipway-models/runs/b/model.tar.gz';
    new InferenceService(s, 'Svc', {
      ...inferenceProps(s),
      initialModelUri: uri,
      initialModelRecord: { etag: 'bbb', sequencer: '0B', eventTime: '2026-03-01T13:00:00Z' },
    });
    const container = Object.values(Template.fromStack(s).findResources('AWS::ECS::TaskDefinition'))[0]!
      .Properties.ContainerDefinitions[0] as { Environment: { Name: string; Value: string }[] };
    const env = Object.fromEntries(container.Environment.map((e) => [e.Name, e.Value]));
    expect(env).toMatchObject({
      [ENV.modelUri]: uri,
      [ENV.modelEtag]: 'bbb',
      [ENV.modelSequencer]: '0B',
      [ENV.modelEventTime]: '2026-03-01T13:00:00Z',
      [ENV.modelVersion]: 'bbb',
    });
    const live = pinnedModelFromEnvironment(env);
    const older = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:00Z', versionId: null });
    const decision = decideRollout(older, { revision: 'r', model: live }, { modelsBucket: MODELS_BUCKET });
    expect(decision.kind === 'skip' && decision.reason).toBe('older-than-live');
  });

  it('pins the configured initial model in the task definition', () => {
    const s = stack();
    new InferenceService(s, 'Svc', { ...inferenceProps(s), initialModelUri: 's3://m/a/model.tar.gz' });
    Template.fromStack(s).hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([{ Name: 'MODEL_URI', Value: 's3://m/a/model.tar.gz' }]),
        }),
      ],
    });
  });
});

describe('TrainingPlatform', () => {
  it('creates no notebook when turned off', () => {
    const s = stack();
    const net = new Network(s, 'Net');
    const store = new ModelStore(s, 'Store');
    const fs = new SharedFileSystem(s, 'Fs', { vpc: net.vpc, subnets: net.privateSubnets });
    const training = new TrainingPlatform(s, 'Training', {
      vpc: net.vpc,
      subnets: net.privateSubnets,
      dataBucket: store.dataBucket,
      modelsBucket: store.modelsBucket,
      fileSystem: fs,
      trainingRepository: ecr.Repository.fromRepositoryName(s, 'Repo', 'slipway-training'),
      notebook: false,
    });
    const t = Template.fromStack(s);
    t.resourceCountIs('AWS::SageMaker::NotebookInstance', 0);
    t.resourceCountIs('AWS::SageMaker::NotebookInstanceLifecycleConfig', 0);
    expect(training.notebookRole).toBeUndefined();
    expect(JSON.stringify(t.findResources('AWS::IAM::Role'))).not.toMatch(/notebook/i);
  });
});

describe('GithubOidc', () => {
  /** The `sub` the one role of a test stack trusts, after checking the audience beside it. */
  function trustedSub(s: Stack): unknown {
    const roles = Object.values(Template.fromStack(s).findResources('AWS::IAM::Role')) as Array<{
      Properties: {
        AssumeRolePolicyDocument: {
          Statement: Array<{ Condition: { StringEquals: Record<string, unknown> } }>;
        };
      };
    }>;
    expect(roles).toHaveLength(1);
    const statements = roles[0]!.Properties.AssumeRolePolicyDocument.Statement;
    expect(statements).toHaveLength(1);
    const equals = statements[0]!.Condition.StringEquals;
    expect(Object.keys(equals).sort()).toEqual([
      'token.actions.githubusercontent.com:aud',
      'token.actions.githubusercontent.com:sub',
    ]);
    expect(equals['token.actions.githubusercontent.com:aud']).toBe('sts.amazonaws.com');
    return equals['token.actions.githubusercontent.com:sub'];
  }

  it('trusts a named environment instead of main when configured', () => {
    const s = stack();
    new GithubOidc(s, 'Gh', {
      repository: { owner: 'acme', repo: 'slipway', environment: 'production' },
    }).addRole('R', 'r', 'test');
    expect(trustedSub(s)).toBe('repo:acme/slipway:environment:production');
  });

  it('with the workflow subject, trusts one exact sub per workflow file of the role, in an environment too', () => {
    const s = stack();
    new GithubOidc(s, 'Gh', {
      repository: { owner: 'acme', repo: 'slipway', environment: 'production' },
      subject: 'workflow',
    }).addRole('R', 'r', 'test', { workflows: ['deploy.yml', 'release.yaml'] });
    expect(trustedSub(s)).toEqual([
      'repo:acme/slipway:environment:production:job_workflow_ref:acme/slipway/.github/workflows/deploy.yml@refs/heads/main',
      'repo:acme/slipway:environment:production:job_workflow_ref:acme/slipway/.github/workflows/release.yaml@refs/heads/main',
    ]);
  });

  it('with the default subject, trusts the repository on main whatever workflows the role names', () => {
    const s = stack();
    new GithubOidc(s, 'Gh', { repository: { owner: 'acme', repo: 'slipway' } }).addRole('R', 'r', 'test', {
      workflows: ['deploy.yml'],
    });
    expect(trustedSub(s)).toBe('repo:acme/slipway:ref:refs/heads/main');
  });

  it('with the workflow subject, refuses a role without workflow files, or a file that is a path or a wildcard', () => {
    const github = new GithubOidc(stack(), 'Gh', {
      repository: { owner: 'acme', repo: 'slipway' },
      subject: 'workflow',
    });
    expect(() => github.addRole('A', 'role-a', 'test')).toThrow(/role role-a names no workflow file/);
    expect(() => github.addRole('B', 'role-b', 'test', { workflows: ['*.yml'] })).toThrow(
      /workflow file "\*\.yml" of role role-b/,
    );
    expect(() => github.addRole('C', 'role-c', 'test', { workflows: ['sub/deploy.yml'] })).toThrow(
      /workflow file "sub\/deploy\.yml"/,
    );
  });

  it('imports an existing provider instead of creating one', () => {
    const s = stack();
    const arn = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';
    new GithubOidc(s, 'Gh', {
      repository: { owner: 'acme', repo: 'slipway' },
      existingProviderArn: arn,
    }).addRole('R', 'r', 'test');
    const t = Template.fromStack(s);
    t.resourceCountIs('AWS::IAM::OIDCProvider', 0);
    t.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Federated: arn } })] },
    });
  });

  it('refuses a role session longer than IAM allows, naming the value', () => {
    const github = new GithubOidc(stack(), 'Gh', { repository: { owner: 'acme', repo: 'slipway' } });
    expect(() => github.addRole('R', 'r', 'test', { maxSessionDuration: Duration.hours(13) })).toThrow(
      /got 46800 s/,
    );
  });

  it('rejects a repository name with a wildcard', () => {
    expect(() => new GithubOidc(stack(), 'Gh', { repository: { owner: 'acme', repo: '*' } })).toThrow(
      /repo "\*"/,
    );
  });
});

describe('ImageRegistry', () => {
  it('rejects a non-positive image history', () => {
    expect(() => new ImageRegistry(stack(), 'Images', { imagesToKeep: 0 })).toThrow(/got 0/);
  });
});

describe('cdk-nag harness', () => {
  it('reports findings on a non-compliant bucket (so a new finding fails the app test)', () => {
    const s = stack();
    new s3.Bucket(s, 'Open');
    Validations.of(s.node.root).addPlugins(new AwsSolutionsChecks(s.node.root));
    const findings = synthFindings(s.node.root as App);
    expect(findings).toContain('AwsSolutions-S1 @ Test/Open/Resource');
    expect(findings).toContain('AwsSolutions-S10 @ Test/Open/Resource');
  });
});

describe('buildSlipwayApp', () => {
  it('fails with a config error naming the missing GitHub owner', () => {
    expect(() => buildSlipwayApp({ context: { githubRepo: 'slipway' }, nag: false })).toThrow(
      InfraConfigError,
    );
    expect(() => buildSlipwayApp({ context: { githubRepo: 'slipway' }, nag: false })).toThrow(
      /githubOwner = unset/,
    );
  });

  it('leaves the platform stack out, with a warning, when imageTag is missing', () => {
    const built = buildSlipwayApp({
      context: { ...cdkJsonContext(), githubOwner: 'acme', githubRepo: 'slipway' },
      outdir: tempOutdir(),
      nag: false,
    });
    expect(built.platform).toBeUndefined();
    expect(built.app.node.tryFindChild('Slipway')).toBeUndefined();
    Annotations.fromStack(built.registry).hasWarning('*', Match.stringLikeRegexp('imageTag is not set'));
  });
});
