import { RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as efs from 'aws-cdk-lib/aws-efs';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** Properties of `SharedFileSystem`. */
export interface SharedFileSystemProps {
  /** The VPC. */
  readonly vpc: ec2.IVpc;
  /** Subnets of the mount targets (the private subnets). */
  readonly subnets: ec2.SubnetSelection;
}

/** POSIX identity of files on the shared file system (ec2-user on the notebook). */
const POSIX_ID = '1000';

/** Encrypted EFS shared by training jobs and the notebook, reachable over NFS only from security groups granted access. */
export class SharedFileSystem extends Construct {
  /** The file system. */
  readonly fileSystem: efs.FileSystem;
  /** The one access point clients mount (fixed POSIX user, root directory `/slipway`). */
  readonly accessPoint: efs.AccessPoint;

  constructor(scope: Construct, id: string, props: SharedFileSystemProps) {
    super(scope, id);
    this.fileSystem = new efs.FileSystem(this, 'FileSystem', {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      encrypted: true,
      lifecyclePolicy: efs.LifecyclePolicy.AFTER_30_DAYS,
      outOfInfrequentAccessPolicy: efs.OutOfInfrequentAccessPolicy.AFTER_1_ACCESS,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      throughputMode: efs.ThroughputMode.ELASTIC,
      // Only security groups passed to allowFrom() may connect: no VPC-wide NFS rule.
      allowAnonymousAccess: false,
      enableAutomaticBackups: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.accessPoint = this.fileSystem.addAccessPoint('AccessPoint', {
      path: '/slipway',
      posixUser: { uid: POSIX_ID, gid: POSIX_ID },
      createAcl: { ownerUid: POSIX_ID, ownerGid: POSIX_ID, permissions: '750' },
    });
  }

  /** Open NFS (2049) to the file system from one security group. */
  allowFrom(peer: ec2.ISecurityGroup): void {
    this.fileSystem.connections.allowDefaultPortFrom(peer, `NFS from ${peer.node.id}`);
  }

  /** Let a role mount and write through the access point. */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    return this.fileSystem.grant(
      grantee,
      'elasticfilesystem:ClientMount',
      'elasticfilesystem:ClientWrite',
      'elasticfilesystem:DescribeMountTargets',
    );
  }
}
