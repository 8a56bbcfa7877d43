/**
 * Test fixtures for the rollout: AWS's documented S3 "Object Created" EventBridge event, a task
 * definition as DescribeTaskDefinition returns it for a CDK-built Fargate service, and a small
 * stateful ECS simulation on top of aws-sdk-client-mock.
 */
import {
  ClientException,
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UpdateServiceCommand,
  type Deployment,
  type ECSClient,
  type Tag,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import type { AwsClientStub } from 'aws-sdk-client-mock';

/**
 * The "Object created" example from AWS's documentation (Amazon S3 User Guide, "EventBridge event
 * message structure"), verbatim.
 */
export const DOCUMENTED_OBJECT_CREATED_EVENT = {
  version: '0',
  id: '17793124-05d4-b198-2fde-7ededc63b103',
  'detail-type': 'Object Created',
  source: 'aws.s3',
  account: '123456789012',
  time: '2021-11-12T00:00:00Z',
  region: 'ca-central-1',
  resources: ['arn:aws:s3:::amzn-s3-demo-bucket1'],
  detail: {
    version: '0',
    bucket: { name: 'amzn-s3-demo-bucket1' },
    object: {
      key: 'example-key',
      size: 5,
      etag: 'b1946ac92492d2347c6235b4d2611184',
      'version-id': 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
      sequencer: '617f08299329d189',
    },
    'request-id': 'N4N7GDK58NMKJ12R',
    requester: '123456789012',
    'source-ip-address': '1.2.3.4',
    reason: 'PutObject',
  },
} as const;

/** The models bucket the tests configure. */
export const MODELS_BUCKET = 'acme-slipway-models';

/** Overrides for `modelEvent`. */
export interface ModelEventOverrides {
  readonly id?: string;
  readonly bucket?: string;
  readonly key?: string;
  readonly etag?: string;
  readonly versionId?: string | null;
  readonly sequencer?: string;
  readonly time?: string;
  readonly size?: number;
  readonly reason?: string;
  readonly detailType?: string;
}

/** The documented event, moved to the models bucket with a model key (overrides applied). */
export function modelEvent(overrides: ModelEventOverrides = {}): Record<string, unknown> {
  const base = structuredClone(DOCUMENTED_OBJECT_CREATED_EVENT) as unknown as {
    -readonly [K in keyof typeof DOCUMENTED_OBJECT_CREATED_EVENT]: unknown;
  } & { detail: { bucket: { name: string }; object: Record<string, unknown>; reason: string } };
  const bucket = overrides.bucket ?? MODELS_BUCKET;
  base.id = overrides.id ?? base.id;
  base.time = overrides.time ?? base.time;
  base.resources = [`arn:aws:s3:::${bucket}`];
  if (overrides.detailType !== undefined) base['detail-type'] = overrides.detailType;
  base.detail.bucket.name = bucket;
  base.detail.object.key = overrides.key ?? 'training/job-1/output/model.tar.gz';
  if (overrides.etag !== undefined) base.detail.object.etag = overrides.etag;
  if (overrides.sequencer !== undefined) base.detail.object.sequencer = overrides.sequencer;
  if (overrides.size !== undefined) base.detail.object.size = overrides.size;
  if (overrides.reason !== undefined) base.detail.reason = overrides.reason;
  if (overrides.versionId === null) delete base.detail.object['version-id'];
  else if (overrides.versionId !== undefined) base.detail.object['version-id'] = overrides.versionId;
  return base;
}

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const CLUSTER = 'slipway';
export const SERVICE = 'slipway-inference';
export const FAMILY = 'SlipwayInferenceTaskDef1A2B3C4D';

/** ARN of revision `revision` of the test family. */
export function taskDefinitionArn(revision: number): string {
  return `arn:aws:ecs:${REGION}:${ACCOUNT}:task-definition/${FAMILY}:${revision}`;
}

/** Tags of the initial revision (returned with `include: ['TAGS']`). */
export const INITIAL_TAGS: Tag[] = [
  { key: 'project', value: 'slipway' },
  { key: 'aws:cloudformation:stack-name', value: 'Slipway' },
];

/**
 * Revision 5 of the family as DescribeTaskDefinition returns it for a CDK-built Fargate service in
 * the no-model state: every registerable field set, plus the read-only ones ECS adds.
 */
export function initialTaskDefinition(): TaskDefinition {
  return {
    taskDefinitionArn: taskDefinitionArn(5),
    family: FAMILY,
    taskRoleArn: `arn:aws:iam::${ACCOUNT}:role/Slipway-InferenceTaskRole`,
    executionRoleArn: `arn:aws:iam::${ACCOUNT}:role/Slipway-InferenceExecutionRole`,
    networkMode: 'awsvpc',
    revision: 5,
    volumes: [{ name: 'scratch', host: {} }],
    status: 'ACTIVE',
    requiresAttributes: [
      { name: 'com.amazonaws.ecs.capability.logging-driver.awslogs' },
      { name: 'ecs.capability.execution-role-awslogs' },
      { name: 'com.amazonaws.ecs.capability.ecr-auth' },
      { name: 'com.amazonaws.ecs.capability.task-iam-role' },
      { name: 'ecs.capability.container-health-check' },
      { name: 'ecs.capability.execution-role-ecr-pull' },
      { name: 'ecs.capability.task-eni' },
    ],
    placementConstraints: [],
    compatibilities: ['EC2', 'FARGATE'],
    runtimePlatform: { cpuArchitecture: 'ARM64', operatingSystemFamily: 'LINUX' },
    requiresCompatibilities: ['FARGATE'],
    cpu: '1024',
    memory: '2048',
    pidMode: 'task',
    ephemeralStorage: { sizeInGiB: 30 },
    enableFaultInjection: false,
    registeredAt: new Date('2026-11-01T10:00:00Z'),
    registeredBy: `arn:aws:sts::${ACCOUNT}:assumed-role/cdk-hnb659fds-cfn-exec-role/AWSCloudFormation`,
    containerDefinitions: [
      {
        name: 'inference',
        image: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/slipway-inference@sha256:${'ab'.repeat(32)}`,
        cpu: 0,
        portMappings: [{ containerPort: 8080, hostPort: 8080, protocol: 'tcp', name: 'http' }],
        essential: true,
        environment: [
          { name: 'PORT', value: '8080' },
          { name: 'MODEL_URI', value: 'none' },
          { name: 'SLIPWAY_WORKERS', value: '2' },
        ],
        secrets: [
          { name: 'API_TOKEN', valueFrom: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/slipway/token` },
        ],
        mountPoints: [{ sourceVolume: 'scratch', containerPath: '/tmp/models', readOnly: false }],
        volumesFrom: [],
        readonlyRootFilesystem: true,
        ulimits: [{ name: 'nofile', softLimit: 65536, hardLimit: 65536 }],
        logConfiguration: {
          logDriver: 'awslogs',
          options: {
            'awslogs-group': 'Slipway-InferenceLogs',
            'awslogs-stream-prefix': 'inference',
            'awslogs-region': REGION,
          },
        },
        healthCheck: {
          command: ['CMD-SHELL', 'wget -qO- http://localhost:8080/v2/health/ready || exit 1'],
          interval: 10,
          timeout: 5,
          retries: 3,
          startPeriod: 30,
        },
        systemControls: [],
      },
      {
        name: 'otel-collector',
        image: 'public.ecr.aws/aws-observability/aws-otel-collector:v0.43.0',
        cpu: 0,
        essential: false,
        environment: [{ name: 'AOT_CONFIG_CONTENT', value: 'receivers: {}' }],
        mountPoints: [],
        volumesFrom: [],
        systemControls: [],
      },
    ],
  };
}

/** A simulated ECS service the mocks read and write. */
export interface EcsWorld {
  /** Task definitions by ARN, as ECS would describe them. */
  readonly taskDefinitions: Map<string, { taskDefinition: TaskDefinition; tags: Tag[] }>;
  /** The service's current task definition ARN. */
  serviceTaskDefinition: string;
  /** The service's deployments, newest first. */
  deployments: Deployment[];
  /** Revisions ECS handed out so far. */
  lastRevision: number;
  /** ARNs a ListTaskDefinitions page holds (ECS's default, 100, unless a test pages sooner). */
  listPageSize: number;
}

/**
 * Wire `ecs` (an aws-sdk-client-mock stub) to a small stateful ECS: RegisterTaskDefinition adds a
 * revision that later DescribeTaskDefinition calls return, UpdateService switches the service and
 * starts a PRIMARY deployment, TagResource tags a revision, DescribeServices reports the current
 * state.
 */
export function simulateEcs(
  ecs: AwsClientStub<ECSClient>,
  initial: TaskDefinition = initialTaskDefinition(),
  tags: Tag[] = INITIAL_TAGS,
): EcsWorld {
  const initialArn = initial.taskDefinitionArn!;
  const world: EcsWorld = {
    taskDefinitions: new Map([[initialArn, { taskDefinition: initial, tags }]]),
    serviceTaskDefinition: initialArn,
    deployments: [
      {
        id: 'ecs-svc/1000000000000000001',
        status: 'PRIMARY',
        taskDefinition: initialArn,
        desiredCount: 2,
        runningCount: 2,
        pendingCount: 0,
        failedTasks: 0,
        rolloutState: 'COMPLETED',
        rolloutStateReason: 'ECS deployment ecs-svc/1000000000000000001 completed.',
        createdAt: new Date('2026-11-01T10:01:00Z'),
        updatedAt: new Date('2026-11-01T10:05:00Z'),
      },
    ],
    lastRevision: initial.revision ?? 1,
    listPageSize: 100,
  };
  let deploymentCounter = 1;

  const service = () => ({
    serviceArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:service/${CLUSTER}/${SERVICE}`,
    serviceName: SERVICE,
    clusterArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:cluster/${CLUSTER}`,
    status: 'ACTIVE',
    desiredCount: 2,
    runningCount: 2,
    pendingCount: 0,
    launchType: 'FARGATE' as const,
    taskDefinition: world.serviceTaskDefinition,
    deployments: structuredClone(world.deployments),
  });

  ecs.on(DescribeServicesCommand).callsFake(() => ({ services: [service()], failures: [] }));
  ecs.on(DescribeTaskDefinitionCommand).callsFake((input: { taskDefinition: string; include?: string[] }) => {
    const found = world.taskDefinitions.get(input.taskDefinition);
    if (found === undefined) {
      throw new ClientException({ message: 'Unable to describe task definition.', $metadata: {} });
    }
    return {
      taskDefinition: structuredClone(found.taskDefinition),
      ...(input.include?.includes('TAGS') ? { tags: structuredClone(found.tags) } : {}),
    };
  });
  ecs.on(RegisterTaskDefinitionCommand).callsFake((input: TaskDefinition & { tags?: Tag[] }) => {
    world.lastRevision += 1;
    const { tags: inputTags, ...fields } = structuredClone(input);
    const taskDefinition: TaskDefinition = {
      ...fields,
      taskDefinitionArn: taskDefinitionArn(world.lastRevision),
      revision: world.lastRevision,
      status: 'ACTIVE',
      requiresAttributes: initial.requiresAttributes,
      compatibilities: ['EC2', 'FARGATE'],
      registeredAt: new Date('2026-11-02T00:00:00Z'),
      registeredBy: `arn:aws:sts::${ACCOUNT}:assumed-role/SlipwayRolloutFunctionRole/rollout`,
    };
    world.taskDefinitions.set(taskDefinition.taskDefinitionArn!, { taskDefinition, tags: inputTags ?? [] });
    return { taskDefinition: structuredClone(taskDefinition), tags: inputTags ?? [] };
  });
  ecs.on(DeregisterTaskDefinitionCommand).callsFake((input: { taskDefinition: string }) => {
    const found = world.taskDefinitions.get(input.taskDefinition);
    if (found === undefined) throw new ClientException({ message: 'Unknown task definition', $metadata: {} });
    found.taskDefinition = { ...found.taskDefinition, status: 'INACTIVE' };
    return { taskDefinition: structuredClone(found.taskDefinition) };
  });
  ecs.on(TagResourceCommand).callsFake((input: { resourceArn: string; tags: Tag[] }) => {
    const found = world.taskDefinitions.get(input.resourceArn);
    if (found === undefined) throw new ClientException({ message: 'Unknown resource', $metadata: {} });
    const keys = new Set(input.tags.map((tag) => tag.key));
    found.tags = [...found.tags.filter((tag) => !keys.has(tag.key)), ...structuredClone(input.tags)];
    return {};
  });
  ecs.on(UpdateServiceCommand).callsFake((input: { taskDefinition: string }) => {
    if (!world.taskDefinitions.has(input.taskDefinition)) {
      throw new ClientException({ message: 'TaskDefinition not found.', $metadata: {} });
    }
    deploymentCounter += 1;
    world.serviceTaskDefinition = input.taskDefinition;
    world.deployments = [
      {
        id: `ecs-svc/${1000000000000000000 + deploymentCounter}`,
        status: 'PRIMARY',
        taskDefinition: input.taskDefinition,
        desiredCount: 2,
        runningCount: 0,
        pendingCount: 0,
        failedTasks: 0,
        rolloutState: 'IN_PROGRESS',
        rolloutStateReason: 'ECS deployment in progress.',
        createdAt: new Date(Date.UTC(2026, 10, 2, 0, deploymentCounter)),
        updatedAt: new Date(Date.UTC(2026, 10, 2, 0, deploymentCounter)),
      },
      ...world.deployments
        .filter((d) => d.status === 'PRIMARY' || d.status === 'ACTIVE')
        .map((d) => ({ ...d, status: 'ACTIVE' })),
    ];
    return { service: service() };
  });
  ecs
    .on(ListTaskDefinitionsCommand)
    .callsFake((input: { familyPrefix?: string; status?: string; sort?: string; nextToken?: string }) => {
      const arns = [...world.taskDefinitions.values()]
        .map((t) => t.taskDefinition)
        .filter((t) => t.family === input.familyPrefix && (input.status ?? 'ACTIVE') === t.status)
        .sort((a, b) => (input.sort === 'DESC' ? b.revision! - a.revision! : a.revision! - b.revision!))
        .map((t) => t.taskDefinitionArn!);
      const start = Number(input.nextToken ?? 0);
      const end = start + world.listPageSize;
      return {
        taskDefinitionArns: arns.slice(start, end),
        ...(end < arns.length ? { nextToken: String(end) } : {}),
      };
    });
  return world;
}

/**
 * A code deploy by CloudFormation: a revision copied from revision `from` (same model and record)
 * with only the stack's tags, made live. Returns its revision number.
 */
export function codeDeployFrom(world: EcsWorld, from: number): number {
  const source = world.taskDefinitions.get(taskDefinitionArn(from))!.taskDefinition;
  const revision = ++world.lastRevision;
  world.taskDefinitions.set(taskDefinitionArn(revision), {
    taskDefinition: { ...source, revision, taskDefinitionArn: taskDefinitionArn(revision) },
    tags: INITIAL_TAGS,
  });
  world.serviceTaskDefinition = taskDefinitionArn(revision);
  return revision;
}

/** The names of the ECS commands sent, in order. */
export function commandNames(ecs: AwsClientStub<ECSClient>): string[] {
  return ecs.calls().map((call) => (call.args[0] as object).constructor.name);
}
