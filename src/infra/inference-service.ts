import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import type { CfnElement } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { DEFAULT_PORT, ENV, INFERENCE_CONTAINER_NAME, NO_MODEL_URI } from '../names.ts';
import type { PinnedModel } from '../rollout/deploy-target.ts';
import { parseS3ModelUri } from '../rollout/event.ts';
import { modelEnvironment } from '../rollout/pinned-model.ts';
import { planThreads } from '../serve/cpu.ts';

/** Health-check path of the target group: ready only once the model is loaded and warmed. */
export const READINESS_PATH = '/v2/health/ready';

/** How long the server drains in-flight requests after SIGTERM; the LB deregistration delay exceeds it. */
export const SHUTDOWN_TIMEOUT = Duration.seconds(20);

/**
 * Worker and onnxruntime thread counts for a task of `cpuUnits` (1024 = one vCPU; fractions get
 * one thread): one worker per vCPU up to 4, the rest as intra-op threads, so workers × threads
 * never exceed the task's vCPUs (the server's own split, planThreads, applied to the task's budget).
 */
export function threadEnvironment(cpuUnits: number): Record<string, string> {
  const plan = planThreads(cpuUnits / 1024);
  return {
    [ENV.workers]: String(plan.workers),
    [ENV.intraOpThreads]: String(plan.intraOpThreads),
    [ENV.idleIntraOpThreads]: String(plan.idleIntraOpThreads),
  };
}

/**
 * The queue limit for a task of `memoryMiB`: an eighth of its memory (the server's default, 256 MiB,
 * is an eighth of the default 2 GiB task), so a smaller task sheds load before it runs out.
 */
export function queueEnvironment(memoryMiB: number): Record<string, string> {
  return { [ENV.maxQueuedBytes]: String(Math.floor((memoryMiB * 1024 * 1024) / 8)) };
}

/** Properties of `InferenceService`. */
export interface InferenceServiceProps {
  /** The VPC. */
  readonly vpc: ec2.IVpc;
  /** Subnets of the tasks. */
  readonly subnets: ec2.SubnetSelection;
  /** The inference image repository. */
  readonly repository: ecr.IRepository;
  /** Image tag to run (immutable; CI passes the commit SHA). */
  readonly imageTag: string;
  /** Models bucket: the task role may only read it. */
  readonly modelsBucket: s3.IBucket;
  /** MODEL_URI of the task definition CloudFormation owns. @default NO_MODEL_URI */
  readonly initialModelUri?: string;
  /**
   * The rollout's ordering record of `initialModelUri` (what deploy.yml reads from the live
   * revision), so a code deploy keeps it and later events are still judged against it.
   */
  readonly initialModelRecord?: {
    readonly etag?: string;
    readonly sequencer?: string;
    readonly eventTime?: string;
  };
  /** Task-definition family (the rollout Lambda registers revisions of it). */
  readonly family: string;
  /** Fargate CPU units. @default 1024 */
  readonly cpu?: number;
  /** Fargate memory (MiB). @default 2048 */
  readonly memoryMiB?: number;
  /** Autoscaling floor. @default 2 */
  readonly minCount?: number;
  /** Autoscaling ceiling. @default 4 */
  readonly maxCount?: number;
  /** Make the ALB internet-facing (HTTPS only, restricted CIDRs). @default false */
  readonly internetFacing?: boolean;
  /** ACM certificate ARN of the HTTPS listener; required when internetFacing. @default - none */
  readonly certificateArn?: string;
  /** CIDRs allowed to reach an internet-facing ALB; required when internetFacing. @default - none */
  readonly allowedCidrs?: readonly string[];
  /** Log retention of the container logs. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Bucket for ALB access logs; only used when the stack's region is known at synth. @default - no ALB access logs */
  readonly accessLogsBucket?: s3.IBucket;
}

/** The inference service: ECS cluster, Fargate service of the inference container, ALB with readiness checks, autoscaling. */
export class InferenceService extends Construct {
  /** The ECS cluster. */
  readonly cluster: ecs.Cluster;
  /** The Fargate service. */
  readonly service: ecs.FargateService;
  /** The task definition CloudFormation owns (the rollout registers later revisions of its family). */
  readonly taskDefinition: ecs.FargateTaskDefinition;
  /** The load balancer. */
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The target group of the service. */
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** URL clients call. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: InferenceServiceProps) {
    super(scope, id);
    const internetFacing = props.internetFacing ?? false;
    if (internetFacing && !props.certificateArn) {
      throw new Error(
        `InferenceService: internetFacing=true requires certificateArn (got ${String(props.certificateArn)})`,
      );
    }
    if (internetFacing && (props.allowedCidrs ?? []).length === 0) {
      throw new Error(
        'InferenceService: internetFacing=true requires at least one entry in allowedCidrs (got none)',
      );
    }
    const minCount = props.minCount ?? 2;
    const maxCount = props.maxCount ?? 4;
    if (minCount < 1 || minCount > maxCount) {
      throw new Error(
        `InferenceService: minCount must be between 1 and maxCount ${maxCount} (got ${minCount})`,
      );
    }

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      family: props.family,
      cpu: props.cpu ?? 1024,
      memoryLimitMiB: props.memoryMiB ?? 2048,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    // Read-only: the service must never be able to alter or delete a model.
    props.modelsBucket.grantRead(this.taskDefinition.taskRole);

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition.addContainer(INFERENCE_CONTAINER_NAME, {
      containerName: INFERENCE_CONTAINER_NAME,
      image: ecs.ContainerImage.fromEcrRepository(props.repository, props.imageTag),
      portMappings: [{ containerPort: DEFAULT_PORT, protocol: ecs.Protocol.TCP }],
      environment: {
        ...initialModelEnvironment(props.initialModelUri, props.initialModelRecord),
        [ENV.port]: String(DEFAULT_PORT),
        [ENV.shutdownTimeoutMs]: String(SHUTDOWN_TIMEOUT.toMilliseconds()),
        // Fargate may show the container more cores than the task's CPU units and no cgroup quota
        // of its own, so the server would size its pools from the host: pin them to the task.
        ...threadEnvironment(props.cpu ?? 1024),
        // Requests waiting for a worker hold their inputs: bound them by the task's memory.
        ...queueEnvironment(props.memoryMiB ?? 2048),
      },
      logging: ecs.LogDrivers.awsLogs({
        logGroup,
        streamPrefix: 'inference',
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
      }),
      readonlyRootFilesystem: false,
      // ECS sends SIGKILL after this; it must outlast the server's own drain deadline.
      stopTimeout: SHUTDOWN_TIMEOUT.plus(Duration.seconds(10)),
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing,
      vpcSubnets: internetFacing ? { subnetType: ec2.SubnetType.PUBLIC } : props.subnets,
      dropInvalidHeaderFields: true,
      idleTimeout: Duration.seconds(60),
    });
    if (props.accessLogsBucket && !Token.isUnresolved(Stack.of(this).region)) {
      this.loadBalancer.logAccessLogs(props.accessLogsBucket, 'alb');
    } else {
      Validations.of(this.loadBalancer).acknowledge({
        id: 'AwsSolutions-ELB2',
        reason:
          'ALB access logs need the stack region at synth (per-region ELB log-delivery principal); set the `region` config to enable them.',
      });
    }

    const listener = internetFacing
      ? this.loadBalancer.addListener('Https', {
          port: 443,
          protocol: elbv2.ApplicationProtocol.HTTPS,
          certificates: [acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn ?? '')],
          sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
          open: false,
        })
      : this.loadBalancer.addListener('Http', {
          port: 80,
          protocol: elbv2.ApplicationProtocol.HTTP,
          open: false,
        });
    if (internetFacing) {
      for (const range of props.allowedCidrs ?? []) {
        this.loadBalancer.connections.allowFrom(
          ec2.Peer.ipv4(range),
          ec2.Port.tcp(443),
          `HTTPS from ${range}`,
        );
      }
    } else {
      this.loadBalancer.connections.allowFrom(
        ec2.Peer.ipv4(props.vpc.vpcCidrBlock),
        ec2.Port.tcp(80),
        'HTTP from the VPC',
      );
    }

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      // No desiredCount: autoscaling owns the count (a fixed one would reset it on every
      // deploy). ECS creates the service with one task and autoscaling raises it to minCount.
      vpcSubnets: props.subnets,
      assignPublicIp: false,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      // Covers image pull, model download and warm-up before the ALB's verdict counts.
      healthCheckGracePeriod: Duration.seconds(120),
      enableECSManagedTags: true,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    this.targetGroup = listener.addTargets('Inference', {
      port: DEFAULT_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [
        this.service.loadBalancerTarget({
          containerName: INFERENCE_CONTAINER_NAME,
          containerPort: DEFAULT_PORT,
        }),
      ],
      healthCheck: {
        path: READINESS_PATH,
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
        healthyHttpCodes: '200',
      },
      // Longer than the server's drain deadline so in-flight requests finish before the target goes.
      deregistrationDelay: SHUTDOWN_TIMEOUT.plus(Duration.seconds(10)),
    });

    const scaling = this.service.autoScaleTaskCount({ minCapacity: minCount, maxCapacity: maxCount });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: 60,
      scaleInCooldown: Duration.seconds(120),
      scaleOutCooldown: Duration.seconds(60),
    });
    scaling.scaleOnRequestCount('Requests', {
      requestsPerTarget: 500,
      targetGroup: this.targetGroup,
      scaleInCooldown: Duration.seconds(120),
      scaleOutCooldown: Duration.seconds(60),
    });

    const scheme = internetFacing ? 'https' : 'http';
    this.url = `${scheme}://${this.loadBalancer.loadBalancerDnsName}`;

    const taskPolicy = this.taskDefinition.taskRole.node.findChild('DefaultPolicy');
    const bucketId = Stack.of(this).getLogicalId(props.modelsBucket.node.defaultChild as CfnElement);
    const readAcks: Array<[string, string]> = [
      ['Action::s3:GetBucket*', 'CDK grantRead on the one models bucket: bucket metadata, read-only.'],
      [
        'Action::s3:GetObject*',
        'CDK grantRead on the one models bucket: fetch model artifacts (and versions), read-only.',
      ],
      [
        'Action::s3:List*',
        'CDK grantRead on the one models bucket: find the newest model under a prefix URI.',
      ],
      [
        `Resource::<${bucketId}.Arn>/*`,
        'Any model object of the one models bucket can be pinned by a rollout.',
      ],
    ];
    for (const [finding, reason] of readAcks) {
      Validations.of(taskPolicy).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    }
    Validations.of(this.executionRole.node.findChild('DefaultPolicy')).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken (image pull) supports no resource-level permissions.',
    });
    if (!internetFacing) {
      Validations.of(this.loadBalancer.connections.securityGroups[0] ?? this.loadBalancer).acknowledge({
        id: 'AwsSolutions-EC23',
        reason:
          'The internal ALB admits only the VPC CIDR (an intrinsic cdk-nag cannot evaluate), never 0.0.0.0/0.',
      });
    }
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds only non-secret settings (model URI, port, drain timeout, thread counts); there are no secrets to move to Secrets Manager.',
    });
  }

  /** The task role (read-only on the models bucket). */
  get taskRole(): iam.IRole {
    return this.taskDefinition.taskRole;
  }

  /** The execution role (ECR pull, log delivery). */
  get executionRole(): iam.IRole {
    const role = this.taskDefinition.executionRole;
    if (!role) throw new Error('InferenceService: the task definition has no execution role');
    return role;
  }
}

/**
 * MODEL_URI and the rollout's record for the model the template pins, written exactly as the
 * rollout writes them (`modelEnvironment`), with unset values left out.
 */
function initialModelEnvironment(
  uri: string | undefined,
  record: InferenceServiceProps['initialModelRecord'],
): Record<string, string> {
  const model = uri === undefined || uri === NO_MODEL_URI ? undefined : { ...parsePinnedUri(uri), ...record };
  return Object.fromEntries(
    Object.entries(modelEnvironment(model)).filter(
      (entry): entry is [string, string] => entry[1] !== undefined,
    ),
  );
}

function parsePinnedUri(uri: string): PinnedModel {
  return { uri, ...(parseS3ModelUri(uri) ?? {}) };
}
