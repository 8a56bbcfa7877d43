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

/** The example config every test app uses. */
export const TEST_CONFIG = { githubOwner: 'acme', githubRepo: 'slipway', imageTag: 'abc123' } as const;
