import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';

const root = path.resolve(__dirname, '../../..');
const APPS = ['api-gateway', 'user-service', 'product-service', 'inventory-service', 'order-service', 'payment-service', 'event-bus'];

describe('.env.example', () => {
  it('lists every variable of every app’s config schema and of npm start', async () => {
    const listed = new Set([...readFileSync(path.join(root, '.env.example'), 'utf8').matchAll(/^# ([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
    const missing: string[] = [];
    for (const app of APPS) {
      // A runtime path, not an import: tools depend on libs only (module boundaries).
      const { configSchema } = (await import(path.join(root, `apps/${app}/src/config`))) as { configSchema: z.ZodObject };
      for (const name of Object.keys(configSchema.shape)) if (!listed.has(name)) missing.push(`${app}: ${name}`);
    }
    const start = readFileSync(path.join(root, 'tools/scripts/start.mjs'), 'utf8');
    for (const [, name] of start.matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)) if (!listed.has(name)) missing.push(`npm start: ${name}`);

    expect(missing).toEqual([]);
    expect(listed.size).toBeGreaterThan(50);
  });
});
