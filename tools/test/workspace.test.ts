import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const nx = (...args: string[]) => execFileSync('npx', ['nx', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NX_DAEMON: 'false' } });

function lint(file: string, text: string): string[] {
  const result = spawnSync('npx', ['eslint', '--format', 'json', '--stdin', '--stdin-filename', file], { cwd: root, input: text, encoding: 'utf8' });
  return (JSON.parse(result.stdout) as { messages: { ruleId: string }[] }[])[0].messages.map((m) => m.ruleId);
}

describe('workspace', () => {
  it('when one service changes, then only that service is affected; a shared lib change reaches its dependents', () => {
    const affected = (file: string, ...extra: string[]) => nx('show', 'projects', '--affected', `--files=${file}`, '--json', ...extra).trim();
    // Deployment checks (infrastructure) read every app's config, so they are affected too; no other service is.
    expect(JSON.parse(affected('apps/user-service/src/config.ts', '--type=app'))).toEqual(['user-service']);
    const libChange = JSON.parse(affected('libs/errors/src/index.ts')) as string[];
    expect(libChange).toEqual(expect.arrayContaining(['errors', 'http', 'product-service', 'user-service']));
  });

  it('when a lib imports an app, or a service imports another service, then lint fails on module boundaries', () => {
    expect(lint('libs/config/src/bad.ts', "import { start } from '../../../apps/product-service/src/main';\nexport const s = start;\n")).toContain(
      '@nx/enforce-module-boundaries',
    );
    expect(lint('apps/user-service/src/bad.ts', "import { start } from '../../product-service/src/main';\nexport const s = start;\n")).toContain(
      '@nx/enforce-module-boundaries',
    );
    expect(lint('apps/user-service/src/ok.ts', "import { createAuth } from '@cloudretail/auth';\nexport const a = createAuth;\n")).toEqual([]);
  });
});
