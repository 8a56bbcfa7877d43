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

/**
 * What a role's `sub` condition names. `default`: GitHub's default claim, the repository and branch
 * (or environment), so every workflow there may assume every role. `workflow`: the claim the
 * repository is customised to send (`include_claim_keys` `repo`, `context`, `job_workflow_ref`), so
 * a role trusts only the workflow files it is made for.
 */
export const GITHUB_OIDC_SUBJECTS = ['default', 'workflow'] as const;

/** One of `GITHUB_OIDC_SUBJECTS`. */
export type GithubOidcSubject = (typeof GITHUB_OIDC_SUBJECTS)[number];

/** The claim keys the repository's `sub` customisation must include, in order, for `workflow` subjects. */
export const WORKFLOW_SUBJECT_CLAIM_KEYS = ['repo', 'context', 'job_workflow_ref'] as const;

/** The branch whose workflow files the roles trust (the context part of the subject, and the ref of the file). */
const TRUSTED_REF = 'refs/heads/main';

/**
 * The exact `sub` claim a role trusts: `repo:OWNER/REPO:ref:refs/heads/main` or
 * `repo:OWNER/REPO:environment:NAME`; given a workflow file, that followed by
 * `:job_workflow_ref:OWNER/REPO/.github/workflows/FILE@refs/heads/main` (the customised claim).
 *
 * @example githubSubject({ owner: 'acme', repo: 'slipway' }, 'deploy.yml')
 */
export function githubSubject(ref: GithubRepositoryRef, workflowFile?: string): string {
  const scope = ref.environment ? `environment:${ref.environment}` : `ref:${TRUSTED_REF}`;
  const subject = `repo:${ref.owner}/${ref.repo}:${scope}`;
  if (workflowFile === undefined) return subject;
  return `${subject}:job_workflow_ref:${ref.owner}/${ref.repo}/.github/workflows/${workflowFile}@${TRUSTED_REF}`;
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
  /**
   * What each role's `sub` condition names (see `GITHUB_OIDC_SUBJECTS`); `workflow` needs the
   * repository's `sub` customisation, and every role its `workflows`.
   * @default 'default'
   */
  readonly subject?: GithubOidcSubject;
}

/** Options of `GithubOidc.addRole`. */
export interface GithubRoleOptions {
  /** Longest session a workflow may request (1 to 12 hours). @default Duration.hours(1) */
  readonly maxSessionDuration?: Duration;
  /**
   * The workflow files (names in `.github/workflows/`) that assume the role: with the `workflow`
   * subject the role trusts runs of these files on main only.
   * @default - none: allowed only with the `default` subject
   */
  readonly workflows?: readonly string[];
}

/** GitHub Actions OIDC: the identity provider and one role per workflow purpose, each trusting exact subjects. */
export class GithubOidc extends Construct {
  /** ARN of the OIDC provider the roles trust. */
  readonly providerArn: string;
  private readonly repository: GithubRepositoryRef;
  private readonly subject: GithubOidcSubject;

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
    this.subject = props.subject ?? 'default';
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
   * A role that only runs of the configured repository (main or environment) can assume, and with
   * the `workflow` subject only runs of `options.workflows`; for one hour at most unless
   * `maxSessionDuration` says longer (configure-aws-credentials never refreshes a session, so a
   * job that holds one longer must ask for it up front).
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
          [`${GITHUB_OIDC_HOST}:sub`]: this.subjectsOf(roleName, options.workflows),
        },
      }),
    });
  }

  /** The `sub` value(s) a role trusts: one string, or with several workflow files one per file. */
  private subjectsOf(roleName: string, workflows: readonly string[] = []): string | string[] {
    if (this.subject === 'default') return githubSubject(this.repository);
    if (workflows.length === 0) {
      throw new Error(
        `GithubOidc: role ${roleName} names no workflow file, but the workflow subject trusts only the files given`,
      );
    }
    for (const file of workflows) {
      // A file directly in .github/workflows/, so the exact subject leaves nothing to match loosely.
      if (!/^[A-Za-z0-9_.-]+\.ya?ml$/.test(file)) {
        throw new Error(
          `GithubOidc: workflow file ${JSON.stringify(file)} of role ${roleName} is not a file name in .github/workflows/ (name.yml, no path or wildcard)`,
        );
      }
    }
    const subjects = [...new Set(workflows)].map((file) => githubSubject(this.repository, file));
    return subjects.length === 1 ? subjects[0]! : subjects;
  }
}
