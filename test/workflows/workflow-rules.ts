import { tsImport } from 'tsx/esm/api';
import type * as WorkflowParserModule from '@actions/workflow-parser';
import { isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { GITHUB_OIDC_ROLES } from '../../src/names.ts';

/** The action that exchanges the GitHub OIDC token for AWS credentials. */
export const AWS_CREDENTIALS_ACTION = 'aws-actions/configure-aws-credentials';

/** Roles whose workflows change shared state, so two runs must never overlap. */
export const MUTATING_ROLES: readonly string[] = [
  GITHUB_OIDC_ROLES.deployInfra,
  GITHUB_OIDC_ROLES.publishImages,
  GITHUB_OIDC_ROLES.publishDocs,
];

const ROLE_ARN = /^arn:aws:iam::\$\{\{ vars\.AWS_ACCOUNT_ID \}\}:role\/([A-Za-z0-9+=,.@_-]+)$/;
const PINNED = /^[^@\s]+@[0-9a-f]{40}$/;
// Expressions whose values an outsider controls (or a dispatcher types) must not be
// spliced into a shell script: pass them through `env:` instead.
const UNTRUSTED_IN_RUN = /\$\{\{[^}]*\b(inputs\.|github\.event\.|github\.head_ref)/;

/** A rule violation: which workflow, where, and what is wrong. */
export interface Violation {
  readonly file: string;
  readonly where: string;
  readonly message: string;
}

/** What the checker learned about one job, for assertions beyond the generic rules. */
export interface JobFacts {
  readonly id: string;
  /** IAM role names this job assumes through GitHub OIDC. */
  readonly roles: readonly string[];
  /** The job's `permissions` mapping as written. */
  readonly permissions: Readonly<Record<string, string>>;
  /** Every `run:` script of the job. */
  readonly runs: readonly string[];
  /** Every `uses:` reference of the job. */
  readonly uses: readonly string[];
}

/** The result of checking one workflow file. */
export interface WorkflowReport {
  readonly file: string;
  readonly violations: readonly Violation[];
  readonly jobs: readonly JobFacts[];
  /** Event names under `on:`. */
  readonly events: readonly string[];
  /** The workflow-level concurrency setting, if any. */
  readonly concurrency: { readonly group: string; readonly cancelInProgress: unknown } | undefined;
}

type WorkflowParser = typeof WorkflowParserModule;

let parser: Promise<WorkflowParser> | undefined;

/**
 * Loads GitHub's parser through tsx's loader: the package imports its JSON schema
 * without an import attribute, which Node's native ESM loader (used by Vitest for
 * node_modules) refuses.
 */
function loadParser(): Promise<WorkflowParser> {
  parser ??= tsImport('@actions/workflow-parser', import.meta.url) as Promise<WorkflowParser>;
  return parser;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function eventNames(on: unknown): string[] {
  if (typeof on === 'string') return [on];
  if (Array.isArray(on)) return on.filter((e): e is string => typeof e === 'string');
  if (isObject(on)) return Object.keys(on);
  return [];
}

/**
 * Parses a permissions value into scope -> access. `{}` grants nothing; the shorthand
 * strings (`read-all`, `write-all`) are reported as a violation by the caller.
 */
function permissionMap(value: unknown): Record<string, string> | string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (!isObject(value)) return 'invalid';
  const map: Record<string, string> = {};
  for (const [scope, access] of Object.entries(value))
    map[scope] = JSON.stringify(access).replace(/^"|"$/g, '');
  return map;
}

/** Collects `uses:` values anywhere in the YAML document (steps and reusable-workflow jobs). */
function collectUses(node: unknown, out: string[]): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (isScalar(pair.key) && pair.key.value === 'uses' && isScalar(pair.value)) {
        out.push(String(pair.value.value));
      } else {
        collectUses(pair.value, out);
      }
    }
  } else if (isSeq(node)) {
    for (const item of node.items) collectUses(item, out);
  }
}

/**
 * Checks a GitHub Actions workflow against GitHub's own parser and the house rules:
 * actions pinned to commit SHAs, minimal permissions per job, `id-token: write` only
 * where an AWS role is assumed, roles from GITHUB_OIDC_ROLES, no static AWS keys, no
 * untrusted expressions inside scripts, no `pull_request_target`, and a
 * non-cancelling concurrency group wherever a mutating role is assumed.
 */
export async function checkWorkflow(file: string, content: string): Promise<WorkflowReport> {
  const violations: Violation[] = [];
  const flag = (where: string, message: string): void => {
    violations.push({ file, where, message });
  };

  const { parseWorkflow, convertWorkflowTemplate, NoOperationTraceWriter } = await loadParser();
  const parsed = parseWorkflow({ name: file, content }, new NoOperationTraceWriter());
  for (const error of parsed.context.errors.getErrors()) flag('workflow-parser', error.message);
  if (parsed.value !== undefined && parsed.context.errors.count === 0) {
    const template = await convertWorkflowTemplate(parsed.context, parsed.value);
    for (const error of template.errors ?? []) flag('workflow-parser', error.Message);
  }

  const doc = parseDocument(content);
  for (const error of doc.errors) flag('yaml', error.message);
  const root: unknown = doc.toJS();
  if (!isObject(root)) {
    flag('root', 'a workflow must be a YAML mapping');
    return { file, violations, jobs: [], events: [], concurrency: undefined };
  }

  const events = eventNames(root.on);
  if (events.includes('pull_request_target')) {
    flag('on', 'pull_request_target runs untrusted code with a privileged token; use pull_request');
  }

  const top = permissionMap(root.permissions);
  if (top === undefined) {
    flag('permissions', 'declare top-level permissions ({} or contents: read) so jobs start from nothing');
  } else if (typeof top === 'string') {
    flag('permissions', `top-level permissions must be a mapping, not "${top}"`);
  } else {
    for (const [scope, access] of Object.entries(top)) {
      if (!(scope === 'contents' && access === 'read')) {
        flag('permissions', `top-level grants ${scope}: ${access}; grant it in the job that needs it`);
      }
    }
  }

  const allUses: string[] = [];
  collectUses(doc.contents, allUses);
  for (const ref of allUses) {
    if (ref.startsWith('./')) continue;
    if (ref.startsWith('docker://')) {
      if (!/@sha256:[0-9a-f]{64}$/.test(ref)) flag('uses', `${ref} must be pinned to an image digest`);
      continue;
    }
    if (!PINNED.test(ref)) flag('uses', `${ref} is not pinned to a full 40-character commit SHA`);
  }

  const jobs: JobFacts[] = [];
  const jobMap = isObject(root.jobs) ? root.jobs : {};
  for (const [id, rawJob] of Object.entries(jobMap)) {
    const where = `jobs.${id}`;
    if (!isObject(rawJob)) continue;
    const steps = Array.isArray(rawJob.steps) ? rawJob.steps.filter(isObject) : [];
    const uses = steps.map((s) => s.uses).filter((u): u is string => typeof u === 'string');
    const runs = steps.map((s) => s.run).filter((r): r is string => typeof r === 'string');

    const roles: string[] = [];
    for (const step of steps) {
      if (typeof step.uses !== 'string' || !step.uses.startsWith(`${AWS_CREDENTIALS_ACTION}@`)) continue;
      const inputs = isObject(step.with) ? step.with : {};
      if ('aws-access-key-id' in inputs || 'aws-secret-access-key' in inputs) {
        flag(where, 'static AWS keys are not allowed; assume a role through GitHub OIDC');
      }
      const arn = inputs['role-to-assume'];
      const match = typeof arn === 'string' ? ROLE_ARN.exec(arn) : null;
      const role = match?.[1];
      if (role === undefined) {
        flag(
          where,
          `role-to-assume must be arn:aws:iam::\${{ vars.AWS_ACCOUNT_ID }}:role/<name>, got ${JSON.stringify(arn)}`,
        );
        continue;
      }
      if (!(Object.values(GITHUB_OIDC_ROLES) as string[]).includes(role)) {
        flag(where, `role ${role} is not one of the infra's GITHUB_OIDC_ROLES`);
      }
      roles.push(role);
    }

    const perms = permissionMap(rawJob.permissions);
    let permissions: Record<string, string> = {};
    if (perms === undefined) {
      flag(where, 'declare permissions on every job');
    } else if (typeof perms === 'string') {
      flag(where, `permissions must be a mapping of scopes, not "${perms}"`);
    } else {
      permissions = perms;
      for (const [scope, access] of Object.entries(perms)) {
        if (scope === 'contents' && access === 'read') continue;
        if (scope === 'id-token' && access === 'write') {
          if (roles.length === 0) flag(where, 'id-token: write without assuming an AWS role');
          continue;
        }
        if (access !== 'none') flag(where, `grants ${scope}: ${access}, more than the job needs`);
      }
      if (roles.length > 0 && perms['id-token'] !== 'write') {
        flag(where, 'assumes an AWS role but lacks id-token: write');
      }
    }

    if (rawJob['timeout-minutes'] === undefined) flag(where, 'set timeout-minutes');

    for (const script of runs) {
      if (UNTRUSTED_IN_RUN.test(script)) {
        flag(
          where,
          `run: splices an untrusted expression into the script; pass it through env: (${script.split('\n')[0] ?? ''})`,
        );
      }
    }

    jobs.push({ id, roles, permissions, runs, uses });
  }

  let concurrency: WorkflowReport['concurrency'];
  if (isObject(root.concurrency)) {
    concurrency = {
      group: JSON.stringify(root.concurrency.group),
      cancelInProgress: root.concurrency['cancel-in-progress'],
    };
  } else if (typeof root.concurrency === 'string') {
    concurrency = { group: root.concurrency, cancelInProgress: false };
  }
  const mutating = jobs.some((job) => job.roles.some((role) => MUTATING_ROLES.includes(role)));
  if (mutating) {
    if (concurrency === undefined) {
      flag('concurrency', 'a workflow that deploys or publishes needs a workflow-level concurrency group');
    } else if (concurrency.cancelInProgress !== false) {
      flag('concurrency', 'a workflow that deploys or publishes must use cancel-in-progress: false');
    }
  }

  return { file, violations, jobs, events, concurrency };
}

/** Formats violations one per line, for assertion messages. */
export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.file} ${v.where}: ${v.message}`).join('\n');
}
