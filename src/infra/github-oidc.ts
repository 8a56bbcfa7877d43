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

/** Options of `GithubOidc.addRole`. */
export interface GithubRoleOptions {
  /** Longest session a workflow may request (1 to 12 hours). @default Duration.hours(1) */
  readonly maxSessionDuration?: Duration;
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

  /**
   * A role that only runs of the configured repository (main or environment) can assume, for one
   * hour at most unless `maxSessionDuration` says longer (configure-aws-credentials never
   * refreshes a session, so a job that holds one longer must ask for it up front).
   */
  addRole(id: string, roleName: string, description: string, options: GithubRoleOptions = {}): iam.Role {
    const maxSessionDuration = options.maxSessionDuration ?? Duration.hours(1);
    const seconds = maxSessionDuration.toSeconds();
    if (seconds < 3600 || seconds > 43200) {
      throw new Error(
        `GithubOidc: maxSessionDuration of ${roleName} must be 1 to 12 hours (got ${seconds} s)`,
      );
    }
    return new iam.Role(this, id, {
      roleName,
      description,
      maxSessionDuration,
      assumedBy: new iam.WebIdentityPrincipal(this.providerArn, {
        StringEquals: {
          [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
          [`${GITHUB_OIDC_HOST}:sub`]: githubSubject(this.repository),
        },
      }),
    });
  }
}
