import { describe, expect, it } from 'vitest';
import { EXAMPLE_VALUES, InfraConfigError, parseConfig } from '../../src/infra/config.ts';
import { DEFAULT_STACK_NAME, NO_MODEL_URI } from '../../src/names.ts';

const required = { githubOwner: 'acme', githubRepo: 'slipway' };

function errorOf(raw: Record<string, unknown>): InfraConfigError {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof InfraConfigError) return err;
    throw err;
  }
  throw new Error('parseConfig accepted the config');
}

describe('parseConfig', () => {
  it('applies the documented defaults', () => {
    const config = parseConfig(required);
    expect(config).toMatchObject({
      stackName: DEFAULT_STACK_NAME,
      registryStackName: `${DEFAULT_STACK_NAME}Registry`,
      natStrategy: 'single-nat',
      notebook: true,
      serviceCpu: 1024,
      serviceMemory: 2048,
      minCount: 2,
      maxCount: 4,
      internetFacing: false,
      initialModelUri: NO_MODEL_URI,
      logRetentionDays: 30,
    });
    // Unset, not true: the rollout reserves concurrency either way, and notes why only while unset.
    expect(config.serialRollouts).toBeUndefined();
    expect(config.imageTag).toBeUndefined();
    expect(config.desiredCount).toBeUndefined();
  });

  it('names both missing GitHub settings', () => {
    const err = errorOf({});
    expect(err.code).toBe('INFRA_CONFIG');
    expect(err.message).toContain('githubOwner = unset');
    expect(err.message).toContain('githubRepo = unset');
  });

  it('coerces -c strings to numbers and booleans', () => {
    const config = parseConfig({ ...required, notebook: 'false', serviceCpu: '2048', serviceMemory: '4096' });
    expect(config.notebook).toBe(false);
    expect(config.serviceCpu).toBe(2048);
    expect(config.serviceMemory).toBe(4096);
  });

  it('rejects a memory size Fargate does not offer for the CPU, naming the value', () => {
    expect(errorOf({ ...required, serviceMemory: '3000' }).message).toContain('serviceMemory = 3000');
  });

  it('rejects an unknown NAT strategy', () => {
    expect(errorOf({ ...required, natStrategy: 'two-nats' }).message).toContain('natStrategy = "two-nats"');
  });

  it('requires a certificate and CIDRs for an internet-facing load balancer', () => {
    const message = errorOf({ ...required, internetFacing: true }).message;
    expect(message).toContain('certificateArn = unset');
    expect(message).toContain('allowedCidrs = []');
  });

  it('refuses a world-open CIDR', () => {
    const message = errorOf({
      ...required,
      internetFacing: 'true',
      certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc-123',
      allowedCidrs: '203.0.113.0/24, 0.0.0.0/0',
    }).message;
    expect(message).toContain('allowedCidrs.1 = "0.0.0.0/0"');
  });

  it('accepts an internet-facing load balancer with a certificate and CIDRs from a comma list', () => {
    const config = parseConfig({
      ...required,
      internetFacing: 'true',
      certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc-123',
      allowedCidrs: '203.0.113.0/24,198.51.100.0/24',
    });
    expect(config.allowedCidrs).toEqual(['203.0.113.0/24', '198.51.100.0/24']);
  });

  it('refuses the mutable `latest` image tag', () => {
    expect(errorOf({ ...required, imageTag: 'latest' }).message).toContain('imageTag = "latest"');
  });

  it('accepts none or an s3 URI as the initial model', () => {
    expect(parseConfig({ ...required, initialModelUri: 's3://b-1/m/model.tar.gz' }).initialModelUri).toBe(
      's3://b-1/m/model.tar.gz',
    );
    expect(errorOf({ ...required, initialModelUri: 'http://x/model' }).message).toContain('initialModelUri');
  });

  it('reads the initial model ordering record as JSON and checks each field', () => {
    const uri = 's3://b-1/m/model.tar.gz';
    const record = { etag: '0123456789abcdef0123456789abcdef', sequencer: '0062E99A88DC407460' };
    expect(
      parseConfig({ ...required, initialModelUri: uri, initialModelRecord: JSON.stringify(record) })
        .initialModelRecord,
    ).toEqual(record);
    expect(
      parseConfig({ ...required, initialModelUri: uri, initialModelRecord: '{}' }).initialModelRecord,
    ).toEqual({});
    expect(errorOf({ ...required, initialModelUri: uri, initialModelRecord: '{etag' }).message).toMatch(
      /initialModelRecord.*must be JSON/,
    );
    expect(
      errorOf({ ...required, initialModelUri: uri, initialModelRecord: '{"etag":"x"}' }).message,
    ).toMatch(/initialModelRecord.*S3 ETag/);
    expect(errorOf({ ...required, initialModelRecord: JSON.stringify(record) }).message).toMatch(
      /initialModelRecord.*initialModelUri is "none"/,
    );
  });

  it('refuses a stage stack name too long to suffix the IAM role names, naming the value', () => {
    const long = `S${'x'.repeat(33)}`;
    expect(errorOf({ ...required, stackName: long }).message).toContain(
      `stackName = "${long}": must be at most 33 characters`,
    );
    expect(parseConfig({ ...required, stackName: long.slice(0, 33) }).stackName).toHaveLength(33);
  });

  it('trusts GitHub’s default sub unless the workflow subject is chosen, and names a bad value', () => {
    expect(parseConfig(required).githubOidcSubject).toBe('default');
    expect(parseConfig({ ...required, githubOidcSubject: 'workflow' }).githubOidcSubject).toBe('workflow');
    const message = errorOf({ ...required, githubOidcSubject: 'job_workflow_ref' }).message;
    expect(message).toContain('githubOidcSubject = "job_workflow_ref": must be "default"');
    expect(message).toContain('or "workflow"');
    expect(errorOf({ ...required, githubOidcSubject: true }).message).toContain('githubOidcSubject = true');
  });

  it('rejects an invalid bucket name', () => {
    expect(errorOf({ ...required, modelsBucketName: 'Bad_Bucket' }).message).toContain(
      'modelsBucketName = "Bad_Bucket"',
    );
  });

  it('reads alarm emails from a comma list and names one that is not an address', () => {
    expect(parseConfig(required).alarmEmails).toEqual([]);
    expect(parseConfig({ ...required, alarmEmails: 'ops@example.com, ml@example.com' }).alarmEmails).toEqual([
      'ops@example.com',
      'ml@example.com',
    ]);
    expect(errorOf({ ...required, alarmEmails: 'ops@example.com,pager' }).message).toMatch(
      /alarmEmails\.1 = "pager".*must be an email address/,
    );
  });

  it('turns serial rollouts off only for an explicit false, from -c or cdk.json', () => {
    expect(parseConfig({ ...required, serialRollouts: 'false' }).serialRollouts).toBe(false);
    expect(parseConfig({ ...required, serialRollouts: false }).serialRollouts).toBe(false);
    expect(parseConfig({ ...required, serialRollouts: 'true' }).serialRollouts).toBe(true);
  });

  it.each(['no', '0', 'off', 1])(
    'rejects serialRollouts = %j, naming the value and the accepted ones',
    (value) => {
      expect(errorOf({ ...required, serialRollouts: value }).message).toContain(
        `serialRollouts = ${JSON.stringify(value)}: must be true or false`,
      );
    },
  );

  it('rejects a desired count outside the autoscaling range', () => {
    expect(errorOf({ ...required, desiredCount: 9 }).message).toContain('desiredCount = 9');
  });

  it('fills example values only where unset when exampleValues is on', () => {
    const config = parseConfig({ exampleValues: 'true', githubOwner: 'acme' });
    expect(config.githubOwner).toBe('acme');
    expect(config.githubRepo).toBe(EXAMPLE_VALUES.githubRepo);
    expect(config.imageTag).toBe(EXAMPLE_VALUES.imageTag);
  });
});
