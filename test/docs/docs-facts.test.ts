import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { STALE_ASSET_RETENTION_DAYS, STALE_TAG } from '../../scripts/expire-docs-assets.ts';
import { buildProgram } from '../../src/cli/program.ts';
import { defaultTrainOutput } from '../../src/cli/commands/train.ts';
import { bannerLines, servingLines } from '../../src/cli/commands/up.ts';
import { CONFIG_KEYS } from '../../src/infra/config.ts';
import { DOCS_CACHE_CONTROL } from '../../src/infra/docs-site/docs-site.ts';
import { WORKFLOW_SUBJECT_CLAIM_KEYS, githubSubject } from '../../src/infra/github-oidc.ts';
import { READINESS_PATH } from '../../src/infra/inference-service.ts';
import {
  ARTIFACT,
  ENV,
  GITHUB_OIDC_ROLES,
  GITHUB_ROLE_WORKFLOWS,
  IMAGE_REPOSITORIES,
  NOTEBOOK_SCRATCH_PREFIX,
  NO_MODEL_URI,
  STACK_OUTPUTS,
} from '../../src/names.ts';

// The docs are written by hand; these checks keep the names in them tied to the code,
// so a renamed command, variable or output fails a test instead of misleading a reader.
const root = fileURLToPath(new URL('../../', import.meta.url));
const docsDir = join(root, 'docs');
const pages = readdirSync(docsDir, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.md') && !f.includes('node_modules'))
  .map((f) => ({ file: f, text: readFileSync(join(docsDir, f), 'utf8') }));
const allText = pages.map((p) => p.text).join('\n');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

function unique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

let helpText = '';
beforeAll(async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'bin/slipway.js'), '--help'], {
    cwd: root,
  });
  helpText = stdout;
});

describe('names in the docs match the code', () => {
  it('every `slipway <command>` the docs show is a command of the CLI', () => {
    const shown = unique([...allText.matchAll(/\bslipway (?!--)([a-z][a-z-]+)\b/g)].map((m) => m[1]!));
    expect(shown.length).toBeGreaterThan(3);
    const listed = unique([...helpText.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!));
    expect(shown.filter((cmd) => !listed.includes(cmd))).toEqual([]);
  });

  it('every SLIPWAY_* variable the docs name is one the code reads', () => {
    const known = Object.values(ENV) as string[];
    const named = unique([...allText.matchAll(/\bSLIPWAY_[A-Z0-9_]+\b/g)].map((m) => m[0]));
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((name) => !known.includes(name))).toEqual([]);
  });

  it('the docs document every environment variable of the service and the Lambda', () => {
    const internal: string[] = [ENV.modelEtag, ENV.modelSequencer, ENV.modelEventTime];
    const missing = (Object.values(ENV) as string[]).filter(
      (v) => !internal.includes(v) && !allText.includes(v),
    );
    expect(missing).toEqual([]);
  });

  it('the deploy page lists exactly the stack outputs the CLI reads', () => {
    const deploy = pages.find((p) => p.file === join('deploy', 'index.md'))!.text;
    for (const key of Object.values(STACK_OUTPUTS)) expect(deploy).toContain(`\`${key}\``);
  });

  it('the docs name the OIDC roles, image repositories and no-model value the infra uses', () => {
    for (const role of Object.values(GITHUB_OIDC_ROLES)) expect(allText).toContain(role);
    for (const repo of Object.values(IMAGE_REPOSITORIES)) expect(allText).toContain(repo);
    expect(allText).toContain(`MODEL_URI=${NO_MODEL_URI}`);
    const roleLike = unique([...allText.matchAll(/\bslipway-github-[a-z-]+\b/g)].map((m) => m[0]));
    expect(roleLike.filter((r) => !(Object.values(GITHUB_OIDC_ROLES) as string[]).includes(r))).toEqual([]);
  });

  it('the deploy page and the infra README document every key of the CDK config', () => {
    const keys = CONFIG_KEYS.filter((key) => key !== 'exampleValues');
    const infraReadme = readFileSync(join(root, 'src', 'infra', 'README.md'), 'utf8');
    const deploy = pages.find((p) => p.file === join('deploy', 'index.md'))!.text;
    for (const [file, text] of [
      ['docs/deploy/index.md', deploy],
      ['src/infra/README.md', infraReadme],
    ] as const) {
      expect({ file, missing: keys.filter((key) => !text.includes(`\`${key}\``)) }).toEqual({
        file,
        missing: [],
      });
    }
  });

  it('the operations page names the path the load balancer health-checks', () => {
    const operations = pages.find((p) => p.file === join('operations', 'index.md'))!.text;
    const row = operations.split('\n').find((line) => line.startsWith('| `UnhealthyTargets`'));
    expect(row).toContain(`\`GET ${READINESS_PATH}\``);
  });

  it('the security page promises no more model history than the models bucket keeps', () => {
    const security = pages.find((p) => p.file === join('security', 'index.md'))!.text;
    expect(security).not.toMatch(/every model ever deployed/i);
    expect(security).toContain('`modelVersionRetentionDays`');
  });

  it('the security page says the rollout Lambda can deregister task definitions of any family', () => {
    const security = pages.find((p) => p.file === join('security', 'index.md'))!.text;
    const row = security.split('\n').find((line) => line.startsWith('| Rollout Lambda'))!;
    expect(row).toMatch(/deregister[^|]*any family/);
    expect(row).not.toMatch(/\|\s*touch other services\s*\|/);
  });

  it('the security page says the default trust lets any workflow on main assume any role', () => {
    const security = pages.find((p) => p.file === join('security', 'index.md'))!.text;
    expect(security.replace(/\s+/g, ' ')).toContain(
      '**By default, any workflow file on `main` can assume any of the four roles, including `slipway-github-deploy-infra`.**',
    );
  });

  it('the security page lists the exact sub each role trusts with githubOidcSubject=workflow', () => {
    const security = pages.find((p) => p.file === join('security', 'index.md'))!.text;
    const repository = { owner: 'OWNER', repo: 'REPO' };
    for (const [key, workflows] of Object.entries(GITHUB_ROLE_WORKFLOWS)) {
      const role = GITHUB_OIDC_ROLES[key as keyof typeof GITHUB_OIDC_ROLES];
      const row = security.split('\n').find((line) => line.startsWith(`| \`${role}\``));
      for (const file of workflows) expect(row, role).toContain(`\`${githubSubject(repository, file)}\``);
    }
  });

  it('the security and training pages say the notebook writes only its scratch prefix, never a model.tar.gz', () => {
    const security = pages.find((p) => p.file === join('security', 'index.md'))!.text;
    const [can, cannot] = security
      .split('\n')
      .find((line) => line.startsWith('| Notebook role'))!
      .split('|')
      .slice(2, 4);
    expect(can).toContain(`only under \`${NOTEBOOK_SCRATCH_PREFIX}\``);
    expect(cannot).toContain(`write any key ending in \`${ARTIFACT.tarball}\``);
    const training = pages.find((p) => p.file === join('training', 'index.md'))!.text.replace(/\s+/g, ' ');
    expect(training).toContain(`under \`${NOTEBOOK_SCRATCH_PREFIX}\` only`);
    expect(training).toContain(`nor any key ending in \`${ARTIFACT.tarball}\``);
  });

  it('the security page gives the gh api command that turns on the sub customisation the roles expect', () => {
    const security = pages.find((p) => p.file === join('security', 'index.md'))!.text;
    const command =
      /^echo '(\{.*\})' \|\n {2}gh api --method PUT repos\/OWNER\/REPO\/actions\/oidc\/customization\/sub --input -$/m.exec(
        security,
      );
    expect(command).not.toBeNull();
    expect(JSON.parse(command![1]!)).toEqual({
      use_default: false,
      include_claim_keys: [...WORKFLOW_SUBJECT_CLAIM_KEYS],
    });
  });
});

describe('what the docs say the commands do matches the code', () => {
  const page = (file: string): string => pages.find((p) => p.file === join(...file.split('/')))!.text;

  it('the training page says a local `slipway train` writes under .slipway/models/ by default', () => {
    const training = page('training/index.md');
    const localRun = training.slice(training.indexOf('Run it locally'), training.indexOf('```sh'));
    const cwd = join(root, 'any-dir');
    const defaultPrefix = defaultTrainOutput(cwd).slice(pathToFileURL(cwd).href.length + 1);
    expect(localRun).toContain(`\`${defaultPrefix}<job-name>/output/model.tar.gz\``);
    expect(training).not.toMatch(/models bucket by default/);
  });
});

describe('which commands take --cloud, as the docs say', () => {
  let withCloud: string[] = [];
  let without: string[] = [];
  beforeAll(async () => {
    const program = await buildProgram();
    const takes = (c: Command): boolean => c.options.some((o) => o.long === '--cloud');
    withCloud = program.commands.filter(takes).map((c) => c.name());
    without = program.commands.filter((c) => !takes(c)).map((c) => c.name());
  });

  it('no page claims that every command takes --cloud while some do not', () => {
    expect(without.length).toBeGreaterThan(0);
    for (const { file, text } of [...pages, { file: 'README.md', text: readme }]) {
      const claims = text
        .replace(/\s+/g, ' ')
        .match(/\b(every command|commands) works? against[^.]*--cloud/gi);
      expect({ file, claims }).toEqual({ file, claims: null });
    }
  });

  it('the README names the commands with --cloud, and those without it', () => {
    const paragraph = readme
      .split(/\n\s*\n/)
      .find((p) => p.includes('against the local twin by default'))!
      .replace(/\s+/g, ' ');
    for (const name of withCloud) expect(paragraph).toContain(`\`${name}\``);
    const localOnly = /([^.]*) run on this machine only and take no `--cloud`/.exec(paragraph)?.[1] ?? '';
    expect([...localOnly.matchAll(/`([a-z]+)`/g)].map((m) => m[1]).sort()).toEqual([...without].sort());
  });
});

describe('the README on the model version', () => {
  it('says MODEL_VERSION is reported only when the manifest gives no version (the manifest wins)', () => {
    const text = readme.replace(/\s+/g, ' ');
    expect(text).toContain(
      "`MODEL_VERSION` (the version the service reports when the model's manifest gives none; the rollout sets it to the object's version id or ETag)",
    );
    expect(text).not.toMatch(/MODEL_VERSION[^.]*the version the service reports \(set by the rollout\)/);
  });
});

describe('commands the docs give to paste', () => {
  // After `npm ci` the `slipway` bin is not on PATH: a command to run is `npx slipway ...`.
  it('every slipway command in a code block is run through npx', () => {
    const bare: string[] = [];
    for (const { file, text } of [...pages, { file: 'README.md', text: readme }]) {
      for (const block of text.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm)) {
        for (const line of block[1]!.split('\n')) {
          if (/(^|[\s(])slipway [a-z]/.test(line.replace(/npx slipway /g, ''))) bare.push(`${file}: ${line}`);
        }
      }
    }
    expect(bare).toEqual([]);
  });

  it('the quick start shows the commands the banner of `slipway up` prints', () => {
    const quickStart = pages.find((p) => p.file === join('quick-start', 'index.md'))!.text;
    const cwd = join(root, 'any-dir');
    const stateRoot = join(cwd, '.slipway');
    const printed = [
      ...bannerLines(
        { url: 'http://127.0.0.1:8080', s3Endpoint: 'http://127.0.0.1:1', stateRoot, tasks: 2 },
        cwd,
      ),
      ...servingLines('http://127.0.0.1:8080', stateRoot, join(stateRoot, 'sample-request.json'), cwd),
    ].filter((line) => line.includes('slipway '));
    for (const line of printed.filter((l) => !l.includes('S3 (s3rver)'))) {
      expect(quickStart).toContain(line);
    }
  });
});

describe('pages that list what the code has', () => {
  it('the local twin page lists every option of `slipway up`', async () => {
    const up = (await buildProgram(['node', 'slipway', 'up'])).commands.find((c) => c.name() === 'up')!;
    const page = pages.find((p) => p.file === join('local-twin', 'index.md'))!.text;
    const section = page.slice(page.indexOf('## Options of `slipway up`'));
    const documented = [...section.matchAll(/^\| `(--[a-z0-9-]+)/gm)].map((m) => m[1]!);
    expect(documented.sort()).toEqual(up.options.map((o) => o.long!).sort());
  });

  it('the CI/CD page names the npm steps of ci.yml in order', () => {
    const workflow = parseYaml(readFileSync(join(root, '.github', 'workflows', 'ci.yml'), 'utf8')) as {
      jobs: Record<string, { steps: { run?: string }[] }>;
    };
    const npmSteps = Object.values(workflow.jobs)
      .flatMap((job) => job.steps)
      .flatMap((step) => (step.run?.startsWith('npm ') ? [step.run.trim()] : []));
    expect(npmSteps.length).toBeGreaterThan(3);
    const page = pages.find((p) => p.file === join('ci-cd', 'index.md'))!.text;
    const section = page.slice(page.indexOf('## ci.yml'), page.indexOf('## deploy.yml'));
    const named = [...section.matchAll(/`(npm [^`]+)`/g)].map((m) => m[1]!);
    expect(named).toEqual(npmSteps);
  });

  it('the CI/CD page gives the Cache-Control and stale-asset retention docs.yml publishes with', () => {
    const page = pages.find((p) => p.file === join('ci-cd', 'index.md'))!.text;
    const section = page
      .slice(page.indexOf('## docs.yml'), page.indexOf('## train.yml'))
      .replace(/\s+/g, ' ');
    expect(section).toContain(`\`Cache-Control: ${DOCS_CACHE_CONTROL.assets}\``);
    expect(section).toContain(`\`Cache-Control: ${DOCS_CACHE_CONTROL.pages}\``);
    expect(section).toContain(`\`${STALE_TAG}\``);
    expect(section).toContain(`stale for ${STALE_ASSET_RETENTION_DAYS} days`);
    expect(section).not.toMatch(/sync[^.]*--delete[^.]*invalidates/);
  });
});
