import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type K8sObject, nestedNxEnv, parseManifests, requireTool, run, validateManifests, workspaceRoot } from './support';

/**
 * `npm run deploy -- promote` on a scratch Git checkout (the manifests of this repository, a bare
 * repository as `origin`): the rendered overlays must carry exactly the promoted digests, and
 * nothing else may change — not in the promoted overlay, not in any other environment.
 */
const OVERLAYS = { staging: 'overlays/staging', 'production-eu-west': 'overlays/production/eu-west', 'production-us-east': 'overlays/production/us-east' } as const;
type Env = keyof typeof OVERLAYS;
const cli = path.join(workspaceRoot, 'tools/deploy/src/cli.ts');
const tsx = path.join(workspaceRoot, 'node_modules/.bin/tsx');
const digest = (n: number) => `sha256:${n.toString(16).padStart(2, '0').repeat(32)}`;
const ref = (app: string, n: number) => `ghcr.io/cloudretail/${app}@${digest(n)}`;

let dir: string;
let repo: string;
let origin: string;
const git = (...args: string[]) => run('git', args, { cwd: repo }).trim();

/** As on a CI runner: no git identity anywhere (the merge and the commit must bring their own). */
function noGitIdentity(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { GIT_AUTHOR_NAME: _an, GIT_AUTHOR_EMAIL: _ae, GIT_COMMITTER_NAME: _cn, GIT_COMMITTER_EMAIL: _ce, EMAIL: _e, ...rest } = env;
  return { ...rest, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
}

function promote(args: string[]) {
  return spawnSync(tsx, [cli, 'promote', ...args, '--audit-file', path.join(dir, 'audit.jsonl')], {
    cwd: repo,
    encoding: 'utf8',
    env: noGitIdentity({ ...nestedNxEnv(), DEPLOY_ACTOR: 'release-bot', DRY_RUN: '' }),
  });
}

function writeDigests(name: string, digests: Record<string, string>): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(digests));
  return file;
}

const render = (env: Env): K8sObject[] => parseManifests(run('kubectl', ['kustomize', path.join(repo, 'infrastructure/kubernetes', OVERLAYS[env])]));
const renderAll = () => Object.fromEntries(Object.keys(OVERLAYS).map((env) => [env, render(env as Env)])) as Record<Env, K8sObject[]>;

/** Every container image of the rendered workloads, by `Kind/name container`. */
function images(objs: K8sObject[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of objs.filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet')) {
    for (const c of [...o.spec.template.spec.containers, ...(o.spec.template.spec.initContainers ?? [])]) out[`${o.kind}/${o.metadata.name} ${c.name}`] = c.image;
  }
  return out;
}

/** The objects with every image blanked: what must not change at all. */
const withoutImages = (objs: K8sObject[]) => JSON.parse(JSON.stringify(objs).replace(/"image":"[^"]*"/g, '"image":""'));

beforeAll(() => {
  requireTool('kubectl');
  requireTool('git');
  dir = mkdtempSync(path.join(os.tmpdir(), 'promotion-'));
  repo = path.join(dir, 'checkout');
  origin = path.join(dir, 'origin.git');
  cpSync(path.join(workspaceRoot, 'infrastructure/kubernetes'), path.join(repo, 'infrastructure/kubernetes'), { recursive: true });
  git('init', '-q', '-b', 'main');
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'add', '.');
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'manifests');
  run('git', ['init', '-q', '--bare', origin]);
  git('remote', 'add', 'origin', origin);
  git('push', '-q', 'origin', 'main');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('promote', () => {
  let before: Record<Env, K8sObject[]>;
  const first = { 'api-gateway': ref('api-gateway', 1), 'product-service': ref('product-service', 2) };

  test('when production-eu-west is promoted onto a new env branch, then its render carries exactly those digests, and nothing else changed anywhere', () => {
    before = renderAll();
    const built = git('rev-parse', 'HEAD');

    const result = promote(['--env', 'production-eu-west', '--digests', writeDigests('first.json', first), '--source', built, '--branch', 'env/production-eu-west', '--push', '--previous-out', path.join(dir, 'previous.json')]);

    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    const after = renderAll();
    const expected = Object.fromEntries(
      Object.entries(images(before['production-eu-west'])).map(([where, image]) => {
        const app = Object.keys(first).find((a) => image.startsWith(`ghcr.io/cloudretail/${a}:`));
        return [where, app ? first[app as keyof typeof first] : image];
      }),
    );
    expect(images(after['production-eu-west'])).toEqual(expected);
    // The gateway's blue and green colours (service-switch component) both follow the promotion; the Rollout's Deployment too.
    expect(Object.values(images(after['production-eu-west'])).filter((i) => i === first['api-gateway']).length).toBeGreaterThanOrEqual(1);
    expect(withoutImages(after['production-eu-west'])).toEqual(withoutImages(before['production-eu-west']));
    expect(after.staging).toEqual(before.staging);
    expect(after['production-us-east']).toEqual(before['production-us-east']);
    expect(validateManifests(run('kubectl', ['kustomize', path.join(repo, 'infrastructure/kubernetes', OVERLAYS['production-eu-west'])]))).toEqual([]);

    // One commit on the env branch, touching only the region's kustomization, pushed to origin.
    expect(git('rev-parse', '--abbrev-ref', 'HEAD')).toBe('env/production-eu-west');
    expect(git('diff', '--name-only', `${built}..HEAD`)).toBe('infrastructure/kubernetes/overlays/production/eu-west/kustomization.yaml');
    expect(git('log', '--format=%s', `${built}..HEAD`)).toBe(`promote production-eu-west: api-gateway@${digest(1)}, product-service@${digest(2)}`);
    expect(run('git', ['--git-dir', origin, 'rev-parse', 'env/production-eu-west']).trim()).toBe(git('rev-parse', 'HEAD'));
    expect(run('git', ['--git-dir', origin, 'rev-parse', 'main']).trim()).toBe(built);
    // What a revert promotes.
    expect(JSON.parse(readFileSync(path.join(dir, 'previous.json'), 'utf8'))).toEqual({ 'api-gateway': 'ghcr.io/cloudretail/api-gateway:0.1.0', 'product-service': 'ghcr.io/cloudretail/product-service:0.1.0' });
    const audit = readFileSync(path.join(dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(audit.at(-1)).toMatchObject({ command: 'promote', env: 'production-eu-west', outcome: 'succeeded', actor: { name: 'release-bot' }, toVersion: JSON.stringify(first) });
    expect(audit.at(-1).actions).toContain('git push origin HEAD:refs/heads/env/production-eu-west');
  });

  test('when main moves on and the next release is promoted, then the branch merges main, keeps its history and carries the new digest', () => {
    git('checkout', '-q', 'main');
    const file = path.join(repo, 'infrastructure/kubernetes/overlays/production/base/kustomization.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('LOG_LEVEL=warn', 'LOG_LEVEL=info'));
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qam', 'production logs at info');
    git('push', '-q', 'origin', 'main');
    const built = git('rev-parse', 'HEAD');
    const previousTip = run('git', ['--git-dir', origin, 'rev-parse', 'env/production-eu-west']).trim();

    const result = promote(['--env', 'production-eu-west', '--digests', writeDigests('second.json', { 'product-service': ref('product-service', 3) }), '--source', built, '--branch', 'env/production-eu-west', '--push', '--previous-out', path.join(dir, 'previous2.json')]);

    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    const objs = render('production-eu-west');
    const imgs = Object.values(images(objs));
    expect(imgs).toContain(ref('product-service', 3));
    expect(imgs).toContain(first['api-gateway']);
    expect(imgs.some((i) => i === first['product-service'])).toBe(false);
    expect(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('common-config'))!.data!.LOG_LEVEL).toBe('info');
    // Fast-forward on the remote: the previous promotion is an ancestor.
    expect(spawnSync('git', ['--git-dir', origin, 'merge-base', '--is-ancestor', previousTip, 'env/production-eu-west']).status).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, 'previous2.json'), 'utf8'))).toEqual({ 'product-service': first['product-service'] });
  });

  test('when the previous digests are promoted back (the rollback), then the render is what it was before', () => {
    const beforeRevert = render('production-eu-west');

    const result = promote(['--env', 'production-eu-west', '--digests', path.join(dir, 'previous2.json'), '--branch', 'env/production-eu-west', '--push']);

    expect(result.status).toBe(0);
    const after = render('production-eu-west');
    expect(Object.values(images(after))).toContain(first['product-service']);
    expect(withoutImages(after)).toEqual(withoutImages(beforeRevert));
  });

  test('when the digests file names an app the overlay does not run, or is not by digest, then nothing is written or committed', () => {
    const head = git('rev-parse', 'HEAD');
    const status = git('status', '--porcelain');

    const unknown = promote(['--env', 'staging', '--digests', writeDigests('unknown.json', { 'no-such-app': ref('no-such-app', 4) })]);
    const byTag = promote(['--env', 'staging', '--digests', writeDigests('latest.json', { 'user-service': 'ghcr.io/cloudretail/user-service' })]);
    const noRegion = promote(['--env', 'production', '--digests', path.join(dir, 'first.json')]);

    expect(unknown.status).toBe(1);
    expect(unknown.stdout).toContain('no-such-app: the overlay has no images entry named no-such-app');
    expect(byTag.status).toBe(2);
    expect(byTag.stderr).toContain('user-service: "ghcr.io/cloudretail/user-service" is not an image reference by digest');
    expect(noRegion.status).toBe(2);
    expect(noRegion.stderr).toContain('names one region');
    expect(git('rev-parse', 'HEAD')).toBe(head);
    expect(git('status', '--porcelain')).toBe(status);
  });
});
