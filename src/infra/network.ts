import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { NAT_STRATEGIES } from './config.ts';

/** The VPC's IPv4 range (the CDK's default), written out so rules can name it as a literal cdk-nag can check. */
export const VPC_CIDR = '10.0.0.0/16';

/** Properties of `Network`. */
export interface NetworkProps {
  /**
   * How private subnets reach AWS APIs other than S3.
   * `single-nat`: one NAT gateway (cheapest for general egress; AZ failure cuts egress of the other AZ).
   * `nat-per-az`: one NAT gateway per AZ (highly available, twice the cost).
   * `endpoints`: no NAT, isolated subnets plus interface endpoints (no internet at all).
   * @default 'single-nat'
   */
  readonly natStrategy?: (typeof NAT_STRATEGIES)[number];
  /** Retention of the VPC flow log group. @default logs.RetentionDays.ONE_MONTH */
  readonly flowLogRetention?: logs.RetentionDays;
}

/** The VPC across two AZs: public subnets for the ALB, private subnets for tasks, the notebook and training jobs. */
export class Network extends Construct {
  /** The VPC. */
  readonly vpc: ec2.Vpc;
  /** Where tasks, training jobs and the notebook run. */
  readonly privateSubnets: ec2.SubnetSelection;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    const strategy = props.natStrategy ?? 'single-nat';
    const privateType =
      strategy === 'endpoints' ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS;
    const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
      // Env-agnostic: AZs come from Fn::GetAZs, so synth needs no context lookup.
      maxAzs: 2,
      natGateways: strategy === 'single-nat' ? 1 : strategy === 'nat-per-az' ? 2 : 0,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: privateType, cidrMask: 20 },
      ],
      restrictDefaultSecurityGroup: false,
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
          trafficType: ec2.FlowLogTrafficType.ALL,
          maxAggregationInterval: ec2.FlowLogMaxAggregationInterval.TEN_MINUTES,
        },
      },
    });
    this.privateSubnets = { subnetType: privateType };
    if (strategy === 'endpoints') {
      // Without NAT, everything the tasks, jobs and notebook call must have an endpoint.
      const services: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
        EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
        EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
        Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        Sts: ec2.InterfaceVpcEndpointAwsService.STS,
        SageMakerApi: ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
      };
      // One group for every endpoint, admitting HTTPS from the VPC's literal range: the default
      // group per endpoint admits the VPC CIDR as an intrinsic, which cdk-nag (EC23) cannot
      // evaluate and reports as an error.
      const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc: this.vpc,
        description: 'Interface VPC endpoints: HTTPS from inside the VPC only',
        allowAllOutbound: false,
      });
      endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), 'HTTPS from the VPC');
      for (const [name, service] of Object.entries(services)) {
        this.vpc.addInterfaceEndpoint(name, {
          service,
          subnets: this.privateSubnets,
          privateDnsEnabled: true,
          securityGroups: [endpointSecurityGroup],
          open: false,
        });
      }
    }
  }
}
