/** Shared helpers of the infra tests: cdk.json context, cdk-nag findings, IAM statement lookup. */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { App, CfnElement, Stack } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';

/** The feature flags and settings in cdk.json, so tests synthesize what `npm run synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
  const json = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
    context: Record<string, unknown>;
  };
  return json.context;
}

/** A fresh assembly directory per synth. */
export function tempOutdir(): string {
  return mkdtempSync(join(tmpdir(), 'slipway-cdk-'));
}

/** One cdk-nag finding: `RuleId @ construct path`. */
export type Finding = string;

/** Synthesize the app once and return every validation finding (empty when the pack passes). */
export function synthFindings(app: App): Finding[] {
  try {
    app.synth();
  } catch (err) {
    const report = join(app.outdir, 'validation-report.json');
    if (!existsSync(report)) throw err;
    const parsed = JSON.parse(readFileSync(report, 'utf8')) as {
      pluginReports: Array<{
        violations: Array<{ ruleName: string; violatingConstructs: Array<{ constructPath: string }> }>;
      }>;
    };
    const findings = parsed.pluginReports.flatMap((r) =>
      r.violations.flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} @ ${c.constructPath}`)),
    );
    if (findings.length === 0) throw err;
    return findings;
  }
  return [];
}

/** Logical ID of a construct's CloudFormation resource. */
export function logicalId(construct: IConstruct): string {
  const child = construct.node.defaultChild ?? construct;
  const stack = (construct.node.scopes.find((s) => 'templateOptions' in s) ?? null) as Stack | null;
  if (!stack) throw new Error(`no stack above ${construct.node.path}`);
  return stack.getLogicalId(child as CfnElement);
}

/** An IAM statement as it appears in a template. */
export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
  Sid?: string;
}

/** Every statement of every AWS::IAM::Policy attached to the role with this logical ID. */
export function statementsOfRole(template: Template, roleId: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy') as Record<
    string,
    { Properties: { Roles: unknown[]; PolicyDocument: { Statement: Statement[] } } }
  >;
  return Object.values(policies)
    .filter((p) => p.Properties.Roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId })))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** Actions of statements as a flat list. */
export function actionsOf(statements: readonly Statement[]): string[] {
  return statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

/** True when an IAM action pattern (may contain `*`) could grant `action`. */
export function grants(pattern: string, action: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`, 'i');
  return re.test(action);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A template ARN value as a string: a literal, `Fn::GetAtt [id, 'Arn']` or an `Fn::Join` of
 * those, with each logical ID's ARN taken from `arns`; undefined for anything else.
 */
export function resolveArn(value: unknown, arns: Readonly<Record<string, string>>): string | undefined {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return undefined;
  const getAtt = (value as { 'Fn::GetAtt'?: unknown })['Fn::GetAtt'];
  if (Array.isArray(getAtt) && getAtt[1] === 'Arn') return arns[String(getAtt[0])];
  const join = (value as { 'Fn::Join'?: unknown })['Fn::Join'];
  if (Array.isArray(join) && join[0] === '' && Array.isArray(join[1])) {
    const parts = (join[1] as unknown[]).map((part) => resolveArn(part, arns));
    return parts.every((part) => part !== undefined) ? parts.join('') : undefined;
  }
  return undefined;
}

/** True when an IAM resource pattern (`*` any run, `?` one character; case-sensitive) matches `arn`. */
function resourceMatches(pattern: string, arn: string): boolean {
  const re = pattern
    .split('*')
    .map((run) => run.split('?').map(escape).join('.'))
    .join('.*');
  return new RegExp(`^${re}$`).test(arn);
}

/**
 * Whether the statements let a principal do `action` on `arn`: some Allow matches and no Deny
 * does, as IAM decides within one identity policy set. Conditions are not evaluated: a conditional
 * Allow counts and a conditional Deny does not, so a "cannot" the check reports is sure.
 */
export function allows(
  statements: readonly Statement[],
  action: string,
  arn: string,
  arns: Readonly<Record<string, string>>,
): boolean {
  const matching = statements.filter((s) => {
    if ('NotAction' in s || 'NotResource' in s) throw new Error(`allows: NotAction/NotResource unsupported`);
    const resources: unknown[] = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
    return (
      actionsOf([s]).some((a) => grants(a, action)) &&
      resources.some((r) => {
        const pattern = resolveArn(r, arns);
        return pattern !== undefined && resourceMatches(pattern, arn);
      })
    );
  });
  const denied = matching.some((s) => s.Effect === 'Deny' && s.Condition === undefined);
  return !denied && matching.some((s) => s.Effect === 'Allow');
}

/** The example config every test app uses. */
export const TEST_CONFIG = { githubOwner: 'acme', githubRepo: 'slipway', imageTag: 'abc123' } as const;
