import { Aws, Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** Issuer host of GitHub Actions OIDC tokens. */
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';

/** The audience GitHub's configure-aws-credentials action requests. */
export const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';

/** Which GitHub workflow runs may assume the roles. */
export interface GithubRepositoryRef {
  /** Repository owner (user or organisation). */
  readonly owner: string;
  /** Repository name. */
  readonly repo: string;
  /** Trust runs of this GitHub environment instead of the `main` branch. @default - branch main */
  readonly environment?: string;
}

/** The exact `sub` claim the roles trust: `repo:OWNER/REPO:ref:refs/heads/main` or `repo:OWNER/REPO:environment:NAME`. */
export function githubSubject(ref: GithubRepositoryRef): string {
  const scope = ref.environment ? `environment:${ref.environment}` : 'ref:refs/heads/main';
  return `repo:${ref.owner}/${ref.repo}:${scope}`;
}

/** Properties of `GithubOidc`. */
export interface GithubOidcProps {
  /** The repository (and branch or environment) the roles trust. */
  readonly repository: GithubRepositoryRef;
  /**
   * Create the account's GitHub OIDC provider here. When false, the provider is referenced by
   * `existingProviderArn`, or by its standard ARN in this account.
   * @default true
   */
  readonly createProvider?: boolean;
  /** ARN of an existing provider to use instead of creating one. @default - created, or the standard ARN */
  readonly existingProviderArn?: string;
}

/** GitHub Actions OIDC: the identity provider and one role per workflow purpose, each trusting one exact subject. */
export class GithubOidc extends Construct {
  /** ARN of the OIDC provider the roles trust. */
  readonly providerArn: string;
  private readonly repository: GithubRepositoryRef;

  constructor(scope: Construct, id: string, props: GithubOidcProps) {
    super(scope, id);
    for (const [key, value] of Object.entries({
      owner: props.repository.owner,
      repo: props.repository.repo,
    })) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) {
        throw new Error(`GithubOidc: repository ${key} ${JSON.stringify(value)} is not a GitHub name`);
      }
    }
    this.repository = props.repository;
    if (props.existingProviderArn) {
      this.providerArn = props.existingProviderArn;
    } else if (props.createProvider ?? true) {
      const provider = new iam.OidcProviderNative(this, 'Provider', {
        url: `https://${GITHUB_OIDC_HOST}`,
        clientIds: [GITHUB_OIDC_AUDIENCE],
      });
      this.providerArn = provider.oidcProviderArn;
    } else {
      this.providerArn = `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:oidc-provider/${GITHUB_OIDC_HOST}`;
    }
  }

  /** A role that only runs of the configured repository (main or environment) can assume, for one hour at most. */
  addRole(id: string, roleName: string, description: string): iam.Role {
    return new iam.Role(this, id, {
      roleName,
      description,
      maxSessionDuration: Duration.hours(1),
      assumedBy: new iam.WebIdentityPrincipal(this.providerArn, {
        StringEquals: {
          [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
          [`${GITHUB_OIDC_HOST}:sub`]: githubSubject(this.repository),
        },
      }),
    });
  }
}
