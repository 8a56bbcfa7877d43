#!/usr/bin/env node
// Runs the CLI from the TypeScript sources (a clone after `npm ci`). The container
// images run the compiled build instead: `node dist/cli/main.js`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
