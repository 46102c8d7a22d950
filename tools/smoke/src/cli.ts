/**
 * `npm run test:smoke -- --env <env> [--base-url URL] [--mode full|read-only]`
 *
 * The base URL comes from --base-url, else SMOKE_BASE_URL, else tools/smoke/environments.json.
 * Production environments default to the read-only suite. The full suite logs in as the admin
 * (SMOKE_ADMIN_EMAIL / SMOKE_ADMIN_PASSWORD; for `local` the defaults of `npm start` and compose).
 * With DRY_RUN=1 (or --dry-run) it prints what it would run and exits 0.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SmokeFailure, runSmoke } from './smoke';

const environments = JSON.parse(readFileSync(path.join(__dirname, '..', 'environments.json'), 'utf8')) as Record<string, string>;

function fail(message: string): never {
  console.error(`smoke: ${message}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      env: { type: 'string' },
      'base-url': { type: 'string' },
      mode: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '20000' },
    },
  });
  const env = values.env ?? 'local';
  const baseUrl = values['base-url'] ?? process.env.SMOKE_BASE_URL ?? environments[env];
  if (!baseUrl) fail(`unknown environment "${env}"; known: ${Object.keys(environments).join(', ')} (or pass --base-url)`);
  const mode = values.mode ?? (env.startsWith('production') ? 'read-only' : 'full');
  if (mode !== 'full' && mode !== 'read-only') fail(`--mode must be full or read-only, not "${mode}"`);
  const local = env === 'local';
  const adminEmail = process.env.SMOKE_ADMIN_EMAIL ?? (local ? 'admin@cloudretail.local' : undefined);
  const adminPassword = process.env.SMOKE_ADMIN_PASSWORD ?? (local ? 'change-me-admin' : undefined);
  const dryRun = values['dry-run'] || ['1', 'true'].includes(process.env.DRY_RUN ?? '');

  console.log(`smoke: ${mode} suite against ${baseUrl} (${env})${dryRun ? ' — dry run, nothing sent' : ''}`);
  if (dryRun) {
    if (mode === 'full' && (!adminEmail || !adminPassword)) fail('the full suite needs SMOKE_ADMIN_EMAIL and SMOKE_ADMIN_PASSWORD');
    return;
  }
  const started = performance.now();
  try {
    const steps = await runSmoke({ baseUrl, mode, adminEmail, adminPassword, timeoutMs: Number(values['timeout-ms']), log: (line) => console.log(line) });
    console.log(`smoke: ${steps.length} steps passed in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    console.error(error instanceof SmokeFailure ? `smoke: FAILED at "${error.step}": ${error.message}` : `smoke: FAILED: ${String(error)}`);
    process.exit(1);
  }
}

void main();
