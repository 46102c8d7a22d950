import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { APP_NAMES, filesUnder, requireTool, run, workspaceRoot } from './support';

const script = path.join(workspaceRoot, 'tools/build-images/build-images.sh');
const yamlTargets = ['infrastructure', 'docker-compose.yml', 'docker-compose.dev.yml', '.github/workflows', '.yamllint.yaml'];

beforeAll(() => {
  for (const tool of ['yamllint', 'shellcheck', 'git']) requireTool(tool);
});

test('yamllint passes on every YAML file of the infrastructure, compose files and workflows', () => {
  expect(run('yamllint', ['-c', '.yamllint.yaml', '-f', 'parsable', '--strict', ...yamlTargets])).toBe('');
});

test('when a YAML file is badly indented, then yamllint with the same config fails (the check is real)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'yamllint-'));
  try {
    writeFileSync(path.join(dir, 'bad.yaml'), 'a:\n   b: 1\n  c: 2\n');
    // Relative path: the config ignores `tmp/`, which an absolute /tmp path would match.
    expect(() => run('yamllint', ['-c', path.join(workspaceRoot, '.yamllint.yaml'), 'bad.yaml'], { cwd: dir })).toThrow(/wrong indentation/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every shell script of the infrastructure and the image build is shellcheck-clean', () => {
  const scripts = [...filesUnder(path.join(workspaceRoot, 'tools/build-images'), (n) => n.endsWith('.sh')), ...filesUnder(path.join(workspaceRoot, 'infrastructure'), (n) => n.endsWith('.sh'))];

  expect(scripts.length).toBeGreaterThanOrEqual(2);
  expect(run('shellcheck', ['--severity=style', ...scripts])).toBe('');
});

describe('build-images.sh --dry-run', () => {
  const version = () => run(script, ['--print-version']).trim();

  test('the version is git describe plus the short sha, never latest', () => {
    const describe = run('git', ['describe', '--tags', '--always', '--dirty']).trim();
    const sha = run('git', ['rev-parse', '--short', 'HEAD']).trim();

    expect(version()).toContain(describe);
    expect(version()).toContain(sha);
    expect(version()).not.toMatch(/latest/);
  });

  test('with --all --push it builds, scans with a HIGH/CRITICAL gate, and pushes every app with a Dockerfile, in that order', () => {
    const out = run(script, ['--dry-run', '--all', '--push', '--registry', 'registry.example/cr']).split('\n');
    const tag = version();

    for (const app of APP_NAMES) {
      const image = `registry.example/cr/${app}:${tag}`;
      const build = out.findIndex((l) => l.startsWith('docker build') && l.includes(`--file apps/${app}/Dockerfile`) && l.includes(`--tag ${image}`));
      const scan = out.findIndex((l) => l.startsWith('trivy image') && /--exit-code 1/.test(l) && /--severity HIGH\\?,CRITICAL/.test(l) && l.trim().endsWith(image));
      const push = out.findIndex((l) => l.trim() === `docker push ${image}`);
      expect({ app, ordered: build >= 0 && build < scan && scan < push }).toEqual({ app, ordered: true });
    }
    expect(out.join('\n')).not.toMatch(/:latest\b/);
  });

  test('without --push it pushes nothing, and naming an app builds only that app', () => {
    const out = run(script, ['--dry-run', 'product-service']);

    expect(out).not.toContain('docker push');
    expect(out.match(/^docker build/gm)).toHaveLength(1);
    expect(out).toContain('--file apps/product-service/Dockerfile');
  });

  test('when an app has no Dockerfile, then the script fails', () => {
    expect(() => run(script, ['--dry-run', 'no-such-app'])).toThrow(/apps\/no-such-app\/Dockerfile not found/);
  });
});
