import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  DEFAULT_STACK_NAME,
  GITHUB_OIDC_ROLES,
  GITHUB_ROLE_WORKFLOWS,
  IMAGE_REPOSITORIES,
  STACK_OUTPUTS,
} from '../../src/names.ts';
import { DOCS_CACHE_CONTROL } from '../../src/infra/docs-site/docs-site.ts';
import { LAUNCH_TRAINING_MAX_SESSION } from '../../src/infra/platform-stack.ts';
import { MNIST_HYPERPARAMETERS } from '../../src/train/examples/mnist/train.ts';
import { STALE_ASSET_RETENTION_DAYS } from '../../scripts/expire-docs-assets.ts';
import { checkWorkflow, formatViolations, type WorkflowReport } from './workflow-rules.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const workflowsDir = join(root, '.github/workflows');
const files = readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f));
const reports = new Map<string, WorkflowReport>();

beforeAll(async () => {
  for (const file of files) {
    reports.set(file, await checkWorkflow(file, readFileSync(join(workflowsDir, file), 'utf8')));
  }
});

function report(file: string): WorkflowReport {
  const found = reports.get(file);
  if (found === undefined) throw new Error(`.github/workflows/${file} is missing`);
  return found;
}

function raw(file: string): Record<string, unknown> {
  return parse(readFileSync(join(workflowsDir, file), 'utf8')) as Record<string, unknown>;
}

/** A workflow step as written. */
interface Step {
  readonly name?: string;
  readonly run?: string;
  readonly env?: Record<string, string>;
}

function allRuns(file: string): string {
  return report(file)
    .jobs.flatMap((job) => job.runs)
    .join('\n');
}

describe('GitHub Actions workflows', () => {
  it('are the four the platform needs', () => {
    expect(files.sort()).toEqual(['ci.yml', 'deploy.yml', 'docs.yml', 'train.yml']);
  });

  it.each(files)('%s passes GitHub’s parser and every house rule', (file) => {
    const { violations } = report(file);
    expect(violations, formatViolations(violations)).toEqual([]);
  });

  it('ci runs on pull requests and on main, and assumes no AWS role', () => {
    expect([...report('ci.yml').events].sort()).toEqual(['pull_request', 'push']);
    expect(raw('ci.yml').on).toMatchObject({ push: { branches: ['main'] } });
    expect(report('ci.yml').jobs.flatMap((job) => job.roles)).toEqual([]);
  });

  it('ci installs, typechecks, lints, tests and synthesizes', () => {
    const runs = allRuns('ci.yml');
    for (const command of [
      'npm ci',
      'npm run typecheck',
      'npm run lint',
      'npm run test:unit',
      'npm run synth',
    ]) {
      expect(runs).toContain(command);
    }
  });

  it('deploy assumes the deploy-infra role for cdk, the publish-images role for ECR, and the restore role after a failure', () => {
    const roles = Object.fromEntries(report('deploy.yml').jobs.map((job) => [job.id, job.roles]));
    expect(roles).toEqual({
      registry: [GITHUB_OIDC_ROLES.deployInfra],
      images: [GITHUB_OIDC_ROLES.publishImages],
      platform: [GITHUB_OIDC_ROLES.deployInfra, GITHUB_OIDC_ROLES.restoreModel],
    });
  });

  it('deploy restores the model read before cdk deploy, only after cdk deploy itself failed or was cancelled, and only when there was one', () => {
    const jobs = raw('deploy.yml').jobs as Record<
      string,
      { steps: { id?: string; if?: string; uses?: string; run?: string; env?: Record<string, string> }[] }
    >;
    const steps = jobs.platform!.steps;
    const deploy = steps.findIndex((s) => s.run?.includes('cdk -- deploy'));
    const restore = steps.findIndex((s) => s.run?.includes('scripts/restore-live-model.ts'));
    const assume = steps.findIndex((s) => JSON.stringify(s).includes('slipway-github-restore-model'));
    expect(steps[deploy]!.id).toBe('deploy');
    expect(deploy).toBeLessThan(assume);
    expect(assume).toBeLessThan(restore);
    // A cancelled run (by hand, or the job's timeout) leaves CloudFormation rolling back all the same.
    const condition =
      "(failure() || cancelled()) && (steps.deploy.outcome == 'failure' || steps.deploy.outcome == 'cancelled') && steps.live.outputs.model-uri != 'none'";
    expect(steps[assume]!.if).toBe(condition);
    expect(steps[restore]!.if).toBe(condition);
    expect(steps[restore]!.env).toEqual({
      LIVE_MODEL_URI: '${{ steps.live.outputs.model-uri }}',
      LIVE_MODEL_RECORD: '${{ steps.live.outputs.model-record }}',
    });
    expect(steps[restore]!.run).toContain(
      '--stack "$SLIPWAY_STACK" --model-uri "$LIVE_MODEL_URI" --model-record "$LIVE_MODEL_RECORD"',
    );
    // The same variables feed the deploy: what is restored is what the deploy pinned.
    expect(steps[deploy]!.env).toMatchObject(steps[restore]!.env!);
  });

  it('deploy pushes both images to the infra’s ECR repositories tagged with the commit SHA', () => {
    const images = raw('deploy.yml').jobs as Record<string, { strategy: { matrix: { include: unknown[] } } }>;
    const matrix = images.images!.strategy.matrix.include;
    expect(matrix).toEqual([
      { dockerfile: 'docker/serve.Dockerfile', repository: IMAGE_REPOSITORIES.inference },
      { dockerfile: 'docker/train.Dockerfile', repository: IMAGE_REPOSITORIES.training },
    ]);
    expect(readFileSync(join(workflowsDir, 'deploy.yml'), 'utf8')).toContain(
      '/${{ matrix.repository }}:${{ github.sha }}',
    );
  });

  it('deploy skips building and pushing an image whose commit tag is already in ECR (tags are immutable)', () => {
    const jobs = raw('deploy.yml').jobs as Record<
      string,
      { steps: { id?: string; if?: string; uses?: string; run?: string; env?: Record<string, string> }[] }
    >;
    const steps = jobs.images!.steps;
    const check = steps.find((s) => s.run?.includes('aws ecr describe-images'));
    expect(check?.id).toBeDefined();
    expect(check!.run).toContain('--repository-name "$REPOSITORY"');
    expect(check!.run).toContain('--image-ids imageTag="$GITHUB_SHA"');
    expect(check!.run).toContain('ImageNotFoundException');
    expect(check!.env).toEqual({ REPOSITORY: '${{ matrix.repository }}' });
    const after = steps.slice(steps.indexOf(check!) + 1);
    for (const action of ['docker/setup-buildx-action@', 'docker/build-push-action@']) {
      const step = after.find((s) => s.uses?.startsWith(action));
      expect(step?.if, action).toBe(`steps.${check!.id}.outputs.pushed != 'true'`);
    }
  });

  it('deploy never overlaps another deploy', () => {
    expect(report('deploy.yml').concurrency).toMatchObject({ cancelInProgress: false });
    expect(report('deploy.yml').events).toContain('push');
  });

  it('deploy pins the platform stack to the image tag of this commit', () => {
    expect(allRuns('deploy.yml')).toMatch(/deploy "\$SLIPWAY_STACK"[^\n]*\n?.*-c imageTag="\$GITHUB_SHA"/s);
  });

  it('deploy carries the live model over to the new task-definition revision', () => {
    const runs = allRuns('deploy.yml');
    expect(runs).toContain('node bin/slipway.js status --cloud --stack "$SLIPWAY_STACK" --wait --json');
    expect(runs).toContain('npx tsx scripts/live-model-uri.ts');
    expect(runs).toContain('-c initialModelUri="$LIVE_MODEL_URI"');
    // ...and the rollout's ordering record of it, so later events are judged against it.
    expect(runs).toContain('npx tsx scripts/live-model-uri.ts --record');
    expect(runs).toContain('-c initialModelRecord="$LIVE_MODEL_RECORD"');
  });

  it('deploy uses the CDK bootstrap qualifier of the CDK_QUALIFIER variable (default hnb659fs) everywhere', () => {
    const text = readFileSync(join(workflowsDir, 'deploy.yml'), 'utf8');
    expect((raw('deploy.yml').env as Record<string, string>).CDK_QUALIFIER).toBe(
      "${{ vars.CDK_QUALIFIER || 'hnb659fs' }}",
    );
    // The default appears once, in that expression: no role name hard-codes it.
    expect(text.match(/hnb659fs/g)).toHaveLength(1);
    const deploys = allRuns('deploy.yml').match(/cdk -- deploy[^]*?(?=\n\S|$)/g) ?? [];
    expect(deploys).toHaveLength(2);
    for (const deploy of deploys) expect(deploy).toContain('-c cdkQualifier="$CDK_QUALIFIER"');
    expect(allRuns('deploy.yml')).toContain('role/cdk-${CDK_QUALIFIER}-lookup-role-');
  });

  it('deploy names the infra’s two stacks, registry first', () => {
    expect(raw('deploy.yml').env).toMatchObject({
      SLIPWAY_REGISTRY_STACK: `${DEFAULT_STACK_NAME}Registry`,
      SLIPWAY_STACK: DEFAULT_STACK_NAME,
    });
    const jobs = raw('deploy.yml').jobs as Record<string, { needs?: string }>;
    expect([jobs.images?.needs, jobs.platform?.needs]).toEqual(['registry', 'images']);
    expect(
      report('deploy.yml')
        .jobs.find((j) => j.id === 'registry')!
        .runs.join('\n'),
    ).toContain('deploy "$SLIPWAY_REGISTRY_STACK"');
  });

  it('docs publishes on main when docs change, with the publish-docs role', () => {
    expect(raw('docs.yml').on).toMatchObject({
      push: { branches: ['main'], paths: expect.arrayContaining(['docs/**']) },
    });
    expect(report('docs.yml').jobs.flatMap((job) => job.roles)).toEqual([GITHUB_OIDC_ROLES.publishDocs]);
  });

  it('docs builds the site and publishes it from the stack outputs', () => {
    const runs = allRuns('docs.yml');
    expect(runs).toContain('npm run docs:build');
    expect(runs).toContain(`output ${STACK_OUTPUTS.docsBucket}`);
    expect(runs).toContain(`output ${STACK_OUTPUTS.docsDistributionId}`);
    expect((raw('docs.yml').env as Record<string, string>).SLIPWAY_STACK).toBe(DEFAULT_STACK_NAME);
  });

  describe('docs publishes without breaking pages readers already hold', () => {
    const steps = (): Step[] =>
      (raw('docs.yml').jobs as Record<string, { steps: Step[] }>).publish!.steps.filter(
        (s) => s.run !== undefined,
      );
    const index = (pattern: RegExp): number => {
      const found = steps().findIndex((s) => pattern.test(s.run!));
      expect(found, String(pattern)).toBeGreaterThanOrEqual(0);
      return found;
    };
    const step = (pattern: RegExp): Step => steps()[index(pattern)]!;
    const ASSETS = /aws s3 cp docs\/\.vitepress\/dist\/assets "s3:\/\/\$DOCS_BUCKET\/assets"/;
    const PAGES = /aws s3 sync docs\/\.vitepress\/dist "s3:\/\/\$DOCS_BUCKET"/;
    const INVALIDATE =
      /aws cloudfront create-invalidation --distribution-id "\$DISTRIBUTION_ID" --paths '\/\*'/;
    const SWEEP = /npx tsx scripts\/expire-docs-assets\.ts --bucket "\$DOCS_BUCKET"/;

    it('uploads the hashed assets before the pages that reference them, then invalidates, then sweeps', () => {
      const order = [ASSETS, PAGES, INVALIDATE, SWEEP].map(index);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      expect(new Set(order).size).toBe(4);
    });

    it('PUTs every asset on each publish, cached as immutable, and never deletes one on upload', () => {
      const run = step(ASSETS).run!;
      expect(run).toContain('--recursive');
      expect(run).toContain(`--cache-control '${DOCS_CACHE_CONTROL.assets}'`);
      expect(run).not.toContain('--delete');
    });

    it('uploads everything else revalidated on each visit, deleting only removed pages, never assets', () => {
      const run = step(PAGES).run!;
      expect(run).toContain(`--cache-control '${DOCS_CACHE_CONTROL.pages}'`);
      expect(run).toContain("--exclude 'assets/*'");
      expect(run).toContain('--delete');
    });

    it('nowhere deletes with aws s3 what it does not exclude from the assets', () => {
      for (const s of steps().filter((s) => s.run!.includes('--delete'))) {
        expect(s.run).toContain("--exclude 'assets/*'");
      }
      expect(allRuns('docs.yml')).not.toMatch(/aws s3 rm|delete-object/);
    });

    it('sweeps the assets of the build it just published, with the retention the step names', () => {
      const sweep = step(SWEEP);
      expect(sweep.run).toContain('--dist docs/.vitepress/dist');
      expect(sweep.name).toContain(`${STALE_ASSET_RETENTION_DAYS} days`);
    });

    it('passes the stack outputs through env, to every step that uses them', () => {
      for (const pattern of [ASSETS, PAGES, SWEEP]) {
        expect(step(pattern).env).toEqual({ DOCS_BUCKET: '${{ steps.stack.outputs.bucket }}' });
      }
      expect(step(INVALIDATE).env).toEqual({ DISTRIBUTION_ID: '${{ steps.stack.outputs.distribution }}' });
    });

    it('keeps its concurrency group: a queued publish waits for the running one', () => {
      expect(report('docs.yml').concurrency).toEqual({ group: '"docs-publish"', cancelInProgress: false });
    });
  });

  it('train is dispatched by hand with hyperparameters and launches through the CLI with --cloud', () => {
    const on = raw('train.yml').on as { workflow_dispatch: { inputs: Record<string, unknown> } };
    expect(report('train.yml').events).toEqual(['workflow_dispatch']);
    expect(Object.keys(on.workflow_dispatch.inputs)).toEqual(
      expect.arrayContaining(['epochs', 'batch-size', 'learning-rate', 'seed']),
    );
    expect(allRuns('train.yml')).toMatch(/node bin\/slipway\.js train --cloud/);
    expect(report('train.yml').jobs.flatMap((job) => job.roles)).toEqual([GITHUB_OIDC_ROLES.launchTraining]);
  });

  it('train asks for a session as long as the job may run, and the launch-training role allows it', () => {
    const jobs = raw('train.yml').jobs as Record<
      string,
      { 'timeout-minutes': number; steps: { uses?: string; with?: Record<string, unknown> }[] }
    >;
    const launch = jobs.launch!;
    const credentials = launch.steps.find((s) =>
      s.uses?.startsWith('aws-actions/configure-aws-credentials@'),
    );
    const seconds = Number(credentials?.with?.['role-duration-seconds']);
    expect(seconds).toBeGreaterThanOrEqual(launch['timeout-minutes'] * 60);
    expect(seconds).toBeLessThanOrEqual(LAUNCH_TRAINING_MAX_SESSION.toSeconds());
  });

  it('train offers the MNIST example’s hyperparameters with the example’s own defaults', () => {
    const on = raw('train.yml').on as { workflow_dispatch: { inputs: Record<string, { default: string }> } };
    const specs = MNIST_HYPERPARAMETERS as Record<string, { default?: unknown }>;
    for (const name of ['epochs', 'batch-size', 'learning-rate', 'seed']) {
      expect(specs[name], name).toBeDefined();
      expect(on.workflow_dispatch.inputs[name]?.default, name).toBe(String(specs[name]!.default));
      expect(allRuns('train.yml')).toContain(`--hp "${name}=$`);
    }
  });

  it('assume each OIDC role from exactly the workflow files the infra lets it trust (githubOidcSubject=workflow)', () => {
    const used = new Map<string, string[]>();
    for (const file of files) {
      for (const role of new Set(report(file).jobs.flatMap((job) => job.roles))) {
        used.set(role, [...(used.get(role) ?? []), file].sort());
      }
    }
    const declared = new Map(
      Object.entries(GITHUB_ROLE_WORKFLOWS).map(([key, workflows]) => [
        GITHUB_OIDC_ROLES[key as keyof typeof GITHUB_OIDC_ROLES] as string,
        [...workflows].sort(),
      ]),
    );
    expect(used).toEqual(declared);
  });

  it('run every job in its own file, so job_workflow_ref names that file (no reusable workflows)', () => {
    for (const file of files) {
      const jobs = raw(file).jobs as Record<string, { uses?: string }>;
      expect(
        Object.entries(jobs).filter(([, job]) => job.uses !== undefined),
        file,
      ).toEqual([]);
    }
  });

  it('use Node 20 with the npm cache wherever they set up Node', () => {
    for (const file of files) {
      const jobs = raw(file).jobs as Record<
        string,
        { steps: { uses?: string; with?: Record<string, unknown> }[] }
      >;
      for (const job of Object.values(jobs)) {
        for (const step of job.steps.filter((s) => s.uses?.startsWith('actions/setup-node@'))) {
          expect(step.with, file).toEqual({ 'node-version': 20, cache: 'npm' });
        }
      }
    }
  });
});

describe('what the workflows call exists', () => {
  const scripts = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  ).scripts;

  it.each(files)('every `npm run <script>` in %s is defined in package.json', (file) => {
    const used = [...allRuns(file).matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]!);
    const missing = used.filter((name) => !(name in scripts));
    expect(missing, `missing npm scripts: ${missing.join(', ')}`).toEqual([]);
  });

  it('the Dockerfiles deploy builds exist', () => {
    const missing = ['docker/serve.Dockerfile', 'docker/train.Dockerfile'].filter(
      (f) => !existsSync(join(root, f)),
    );
    expect(missing).toEqual([]);
  });

  it('`slipway train` accepts the --cloud and --hp options train.yml passes', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(root, 'bin/slipway.js'), 'train', '--help'],
      {
        cwd: root,
      },
    );
    expect(stdout).toContain('--cloud');
    expect(stdout).toContain('--hp');
  });
});
