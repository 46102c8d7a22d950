import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { APP_NAMES, filesUnder, requireTool, run, workspaceRoot } from './support';

const script = path.join(workspaceRoot, 'tools/build-images/build-images.sh');
const yamlTargets = ['infrastructure', 'docker-compose.yml', 'docker-compose.dev.yml', 'docker-compose.kafka.yml', 'docker-compose.monitoring.yml', '.github/workflows', '.yamllint.yaml'];

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
  const scripts = [
    ...['tools/build-images', 'tools/containers', 'infrastructure'].flatMap((dir) => filesUnder(path.join(workspaceRoot, dir), (n) => n.endsWith('.sh'))),
    path.join(workspaceRoot, '.ci/run'),
  ];

  expect(scripts.length).toBeGreaterThanOrEqual(5);
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

  test('with --all --push it builds, scans with the gate, and pushes every app with a Dockerfile, in that order, and writes the digests', () => {
    const digests = path.join(mkdtempSync(path.join(os.tmpdir(), 'digests-')), 'digests.json');
    const out = run(script, ['--dry-run', '--all', '--push', '--registry', 'registry.example/cr', '--digests', digests], { env: { ...process.env, DOCKER: 'docker' } }).split('\n');
    const tag = version();

    for (const app of APP_NAMES) {
      const image = `registry.example/cr/${app}:${tag}`;
      const build = out.findIndex((l) => /docker build /.test(l) && l.includes(`--file apps/${app}/Dockerfile`) && l.includes('--target runtime') && l.includes(`--tag ${image}`));
      const scan = out.findIndex((l) => l.startsWith('trivy image') && l.includes('--format json') && l.trim().endsWith(image));
      const push = out.findIndex((l) => l.trim() === `docker push ${image}`);
      expect({ app, ordered: build >= 0 && build < scan && scan < push }).toEqual({ app, ordered: true });
    }
    expect(out.join('\n')).not.toMatch(/:latest\b/);
    expect(Object.keys(JSON.parse(readFileSync(digests, 'utf8'))).sort()).toEqual([...APP_NAMES].sort());
    for (const ref of Object.values(JSON.parse(readFileSync(digests, 'utf8')) as Record<string, string>)) expect(ref).toMatch(/^registry\.example\/cr\/[a-z-]+@sha256:0{64}$/);
  });

  test('DRY_RUN=1 is --dry-run, and --no-scan says plainly that nothing was scanned', () => {
    const out = run(script, ['--no-scan', 'product-service'], { env: { ...process.env, DRY_RUN: '1' } });

    expect(out).toMatch(/docker build /);
    expect(out).not.toContain('trivy');
    expect(out).toMatch(/WARNING: \S+product-service:\S+ NOT SCANNED \(--no-scan\)/);
  });

  test('without trivy and without --no-scan, a real build refuses to start rather than pass unscanned', () => {
    const pathWithoutTrivy = (process.env.PATH ?? '').split(':').filter((dir) => !existsSync(path.join(dir, 'trivy'))).join(':');

    expect(() => run(script, ['product-service'], { env: { ...process.env, PATH: pathWithoutTrivy } })).toThrow(/trivy is not installed: install it, or pass --no-scan/);
  });

  test('without --push it pushes nothing, and naming an app builds only that app', () => {
    const out = run(script, ['--dry-run', 'product-service'], { env: { ...process.env, DOCKER: 'docker' } });

    expect(out).not.toContain('docker push');
    expect(out.match(/docker build /g)).toHaveLength(1);
    expect(out).toContain('--file apps/product-service/Dockerfile');
  });

  test('when an app has no Dockerfile, then the script fails', () => {
    expect(() => run(script, ['--dry-run', 'no-such-app'])).toThrow(/apps\/no-such-app\/Dockerfile not found/);
  });
});

describe('the scan gate, on recorded Trivy JSON reports', () => {
  const gate = path.join(workspaceRoot, 'tools/build-images/scan-gate.mjs');
  const fixture = (name: string) => path.join(__dirname, 'fixtures/trivy', name);
  const judge = (...files: string[]) => spawnSync('node', [gate, ...files], { encoding: 'utf8' });

  test('a fixable HIGH or CRITICAL finding blocks, naming each finding and its fix', () => {
    const result = judge(fixture('blocked-fixable-high.json'));

    expect(result.status).toBe(1);
    expect(result.stderr).toContain('BLOCKED by 2 fixable HIGH/CRITICAL finding(s)');
    expect(result.stderr).toMatch(/CVE-2025-4802 libc6 2\.36-9\+deb12u10 → 2\.36-9\+deb12u11/);
    expect(result.stderr).toContain('CVE-2024-45296 path-to-regexp');
    expect(result.stderr).not.toContain('CVE-2023-45853'); // CRITICAL but no fix: reported, not blocking
  });

  test('unfixed HIGH/CRITICAL and fixable lower severities are reported, not blocking', () => {
    const result = judge(fixture('passed-unfixed-only.json'));

    expect(result.status).toBe(0);
    expect(result.stdout).toContain('passed (no fixable HIGH/CRITICAL finding)');
    expect(result.stdout).toContain('reported, not blocking: 1 CRITICAL, 1 MEDIUM, 1 LOW');
  });

  test('a clean report passes; one blocked report among several blocks', () => {
    expect(judge(fixture('clean.json')).status).toBe(0);
    expect(judge(fixture('clean.json'), fixture('blocked-fixable-high.json')).status).toBe(1);
  });

  test('anything that is not a Trivy report is an error, never a pass', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gate-'));
    writeFileSync(path.join(dir, 'empty.json'), '{}');

    expect(judge(path.join(dir, 'empty.json')).status).toBe(2);
    expect(judge(path.join(dir, 'missing.json')).status).toBe(2);
    expect(judge().status).toBe(2);
  });
});
