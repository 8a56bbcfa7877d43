/**
 * Entry point of the CDK app (`cdk.json` "app"): builds both stacks from the context config.
 * A config mistake prints one line per bad setting and exits non-zero, without a stack trace.
 */
import { isSlipwayError } from '../errors.ts';
import { buildSlipwayApp } from './slipway-app.ts';

try {
  buildSlipwayApp();
} catch (err) {
  if (!isSlipwayError(err)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
