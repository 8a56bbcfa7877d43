import { describe, expect, it } from 'vitest';
import { NO_MODEL_URI } from '../../src/names.ts';
import { liveModelUri } from '../../scripts/live-model-uri.ts';

function status(deployments: unknown[]): unknown {
  return { stack: 'Slipway', service: { service: 'inference', deployments } };
}

describe('liveModelUri', () => {
  it('returns the model the PRIMARY deployment pins, not a draining one', () => {
    const uri = 's3://acme-models/jobs/j2/output/model.tar.gz?versionId=v2';
    expect(
      liveModelUri(
        status([
          { status: 'PRIMARY', model: { uri } },
          { status: 'ACTIVE', model: { uri: 's3://acme-models/jobs/j1/output/model.tar.gz' } },
        ]),
      ),
    ).toBe(uri);
  });

  it('returns none in the no-model state', () => {
    expect(liveModelUri(status([{ status: 'PRIMARY' }]))).toBe(NO_MODEL_URI);
  });

  it('refuses output that is not a status document, so a failed lookup stops the deploy', () => {
    expect(() => liveModelUri({ error: 'AccessDenied' })).toThrow(/slipway status/);
    expect(() => liveModelUri(status([{ status: 'ACTIVE' }]))).toThrow(/no PRIMARY/);
  });
});
