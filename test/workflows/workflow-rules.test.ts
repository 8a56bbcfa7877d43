import { describe, expect, it } from 'vitest';
import { GITHUB_OIDC_ROLES } from '../../src/names.ts';
import { checkWorkflow } from './workflow-rules.ts';

const CHECKOUT = 'actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683';
const AWS_CREDS = 'aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502';
const DOCS_ROLE = `arn:aws:iam::\${{ vars.AWS_ACCOUNT_ID }}:role/${GITHUB_OIDC_ROLES.publishDocs}`;

/** A workflow that follows every rule; each test breaks exactly one. */
function workflow(
  overrides: { on?: string; top?: string; job?: string; steps?: string; concurrency?: string } = {},
) {
  return [
    `on: ${overrides.on ?? 'push'}`,
    overrides.top ?? 'permissions: {}',
    overrides.concurrency ?? 'concurrency:\n  group: docs\n  cancel-in-progress: false',
    'jobs:',
    '  publish:',
    '    runs-on: ubuntu-latest',
    '    timeout-minutes: 10',
    overrides.job ?? '    permissions:\n      contents: read\n      id-token: write',
    '    steps:',
    `      - uses: ${CHECKOUT}`,
    overrides.steps ??
      `      - uses: ${AWS_CREDS}\n        with:\n          role-to-assume: ${DOCS_ROLE}\n          aws-region: us-east-1`,
    '      - run: echo done',
    '',
  ].join('\n');
}

async function messages(content: string): Promise<string[]> {
  const report = await checkWorkflow('test.yml', content);
  return report.violations.map((v) => v.message);
}

describe('checkWorkflow', () => {
  it('accepts a workflow that follows every rule and reports the role it assumes', async () => {
    const report = await checkWorkflow('test.yml', workflow());
    expect(report.violations).toEqual([]);
    expect(report.jobs[0]?.roles).toEqual([GITHUB_OIDC_ROLES.publishDocs]);
  });

  it("reports errors from GitHub's workflow parser (unknown keys, bad values)", async () => {
    const bad = workflow().replace('runs-on:', 'runs_on:');
    expect((await messages(bad)).join('\n')).toMatch(/runs_on/);
    const badPermission = workflow({ job: '    permissions:\n      contents: reed' });
    expect((await messages(badPermission)).join('\n')).toMatch(/reed/);
  });

  it('rejects an action pinned to a tag instead of a commit SHA', async () => {
    const bad = workflow().replace(CHECKOUT, 'actions/checkout@v4');
    expect(await messages(bad)).toContainEqual(expect.stringMatching(/actions\/checkout@v4 is not pinned/));
  });

  it('rejects an action pinned to a short SHA', async () => {
    const bad = workflow().replace(CHECKOUT, 'actions/checkout@11bd719');
    expect(await messages(bad)).toContainEqual(expect.stringMatching(/not pinned/));
  });

  it('rejects pull_request_target', async () => {
    expect(await messages(workflow({ on: 'pull_request_target' }))).toContainEqual(
      expect.stringMatching(/pull_request_target/),
    );
  });

  it('rejects write permissions at the top level', async () => {
    expect(await messages(workflow({ top: 'permissions:\n  contents: write' }))).toContainEqual(
      expect.stringMatching(/top-level grants contents: write/),
    );
  });

  it('rejects a missing top-level permissions block and the write-all shorthand', async () => {
    expect(await messages(workflow({ top: '' }))).toContainEqual(
      expect.stringMatching(/top-level permissions/),
    );
    expect(await messages(workflow({ top: 'permissions: write-all' }))).toContainEqual(
      expect.stringMatching(/must be a mapping/),
    );
  });

  it('rejects a job without its own permissions', async () => {
    expect(await messages(workflow({ job: '' }))).toContainEqual(
      expect.stringMatching(/declare permissions/),
    );
  });

  it('rejects a job that grants more than it needs', async () => {
    const job = '    permissions:\n      contents: write\n      id-token: write';
    expect(await messages(workflow({ job }))).toContainEqual(expect.stringMatching(/grants contents: write/));
  });

  it('rejects id-token: write in a job that assumes no AWS role', async () => {
    expect(await messages(workflow({ steps: '      - run: echo build' }))).toContainEqual(
      expect.stringMatching(/id-token: write without assuming/),
    );
  });

  it('rejects a job that assumes a role without id-token: write', async () => {
    expect(await messages(workflow({ job: '    permissions:\n      contents: read' }))).toContainEqual(
      expect.stringMatching(/lacks id-token: write/),
    );
  });

  it('rejects a role that is not one of the infra roles', async () => {
    const steps = `      - uses: ${AWS_CREDS}\n        with:\n          role-to-assume: arn:aws:iam::\${{ vars.AWS_ACCOUNT_ID }}:role/admin\n          aws-region: us-east-1`;
    expect(await messages(workflow({ steps }))).toContainEqual(
      expect.stringMatching(/role admin is not one of/),
    );
  });

  it('rejects a hard-coded account id in the role ARN', async () => {
    const steps = `      - uses: ${AWS_CREDS}\n        with:\n          role-to-assume: arn:aws:iam::123456789012:role/${GITHUB_OIDC_ROLES.publishDocs}\n          aws-region: us-east-1`;
    expect(await messages(workflow({ steps }))).toContainEqual(
      expect.stringMatching(/role-to-assume must be/),
    );
  });

  it('rejects static AWS keys', async () => {
    const steps = `      - uses: ${AWS_CREDS}\n        with:\n          role-to-assume: ${DOCS_ROLE}\n          aws-access-key-id: \${{ secrets.KEY }}\n          aws-region: us-east-1`;
    expect(await messages(workflow({ steps }))).toContainEqual(expect.stringMatching(/static AWS keys/));
  });

  it('rejects a publishing workflow without a concurrency group, or one that cancels', async () => {
    expect(await messages(workflow({ concurrency: '' }))).toContainEqual(
      expect.stringMatching(/concurrency group/),
    );
    const cancelling = 'concurrency:\n  group: docs\n  cancel-in-progress: true';
    expect(await messages(workflow({ concurrency: cancelling }))).toContainEqual(
      expect.stringMatching(/cancel-in-progress: false/),
    );
  });

  it('rejects an untrusted expression spliced into a run script', async () => {
    const bad = workflow().replace('echo done', 'echo ${{ github.event.pull_request.title }}');
    expect(await messages(bad)).toContainEqual(expect.stringMatching(/untrusted expression/));
  });

  it('rejects a job without timeout-minutes', async () => {
    const bad = workflow().replace('    timeout-minutes: 10\n', '');
    expect(await messages(bad)).toContainEqual(expect.stringMatching(/timeout-minutes/));
  });
});
