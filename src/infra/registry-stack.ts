import { Aws, Stack, Validations } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { GITHUB_ROLE_WORKFLOWS, githubRoleName } from '../names.ts';
import type { SlipwayConfig } from './config.ts';
import { GithubOidc, type GithubOidcProps } from './github-oidc.ts';
import { ImageRegistry } from './image-registry.ts';

/** Properties of `RegistryStack`. */
export interface RegistryStackProps extends StackProps {
  /** The validated app config. */
  readonly config: SlipwayConfig;
}

/** The CDK bootstrap roles (standard names) a pipeline assumes to deploy with `cdk deploy`. */
export function cdkBootstrapRoleArns(qualifier: string): string[] {
  return ['deploy-role', 'file-publishing-role', 'image-publishing-role', 'lookup-role'].map(
    (role) =>
      `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/cdk-${qualifier}-${role}-${Aws.ACCOUNT_ID}-${Aws.REGION}`,
  );
}

/** The repository, subject and provider ARN both stacks' `GithubOidc` take from the config. */
export function githubOidcProps(config: SlipwayConfig): GithubOidcProps {
  return {
    repository: {
      owner: config.githubOwner,
      repo: config.githubRepo,
      environment: config.githubEnvironment,
    },
    subject: config.githubOidcSubject,
    existingProviderArn: config.githubOidcProviderArn,
  };
}

/**
 * Deployed first: the ECR repositories (images must exist before the service can start), the
 * GitHub OIDC provider, and the roles that deploy infrastructure and publish images.
 */
export class RegistryStack extends Stack {
  /** The two image repositories. */
  readonly images: ImageRegistry;
  /** The GitHub OIDC provider and its roles. */
  readonly github: GithubOidc;
  /** Role of deploy.yml's cdk deploy jobs. */
  readonly deployInfraRole: iam.Role;
  /** Role of deploy.yml's image job. */
  readonly publishImagesRole: iam.Role;

  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.images = new ImageRegistry(this, 'Images', {
      imagesToKeep: config.imagesToKeep,
      stackName: config.stackName,
    });
    this.github = new GithubOidc(this, 'Github', {
      ...githubOidcProps(config),
      createProvider: config.githubOidcProviderArn === undefined,
    });

    this.deployInfraRole = this.github.addRole(
      'DeployInfra',
      githubRoleName('deployInfra', config.stackName),
      'GitHub Actions: cdk deploy through the CDK bootstrap roles',
      { workflows: GITHUB_ROLE_WORKFLOWS.deployInfra },
    );
    // The standard CDK pipeline pattern: the pipeline role holds no resource permissions itself,
    // it only assumes the bootstrap roles, which CloudFormation then uses.
    this.deployInfraRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'AssumeCdkBootstrapRoles',
        actions: ['sts:AssumeRole', 'sts:TagSession'],
        resources: cdkBootstrapRoleArns(config.cdkQualifier),
      }),
    );

    this.publishImagesRole = this.github.addRole(
      'PublishImages',
      githubRoleName('publishImages', config.stackName),
      'GitHub Actions: push the inference and training images',
      { workflows: GITHUB_ROLE_WORKFLOWS.publishImages },
    );
    for (const repository of [this.images.inference, this.images.training]) {
      repository.grantPush(this.publishImagesRole);
      // deploy.yml skips the push when this commit's (immutable) tag already exists.
      repository.grant(this.publishImagesRole, 'ecr:DescribeImages');
    }
    Validations.of(this.publishImagesRole.node.findChild('DefaultPolicy')).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ecr:GetAuthorizationToken supports no resource-level permissions; pushes are limited to the two repositories.',
    });
  }
}
