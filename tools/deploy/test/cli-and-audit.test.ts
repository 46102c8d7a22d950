import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError, parseCli } from '../src/args';
import { detectActor } from '../src/audit';
import { runDeploy } from '../src/cli';
import { recordingKubectl } from '../src/kubectl';

describe('command line', () => {
  it('when --env is production, then the namespace is cloudretail and the image comes from the registry', () => {
    const options = parseCli(['rolling', '--env', 'production', '--app', 'user-service', '--version', '1.2.3'], {});
    expect(options).toMatchObject({ namespace: 'cloudretail', image: 'ghcr.io/cloudretail/user-service:1.2.3', windowMs: 60_000, rolloutTimeoutMs: 300_000 });
  });

  it('when thresholds and window are given, then they replace the defaults', () => {
    const options = parseCli(['verify', '--env', 'staging', '--app', 'user-service', '--max-error-ratio', '0.05', '--max-p99-ms', '250', '--window', '2m'], {});
    expect(options).toMatchObject({ namespace: 'cloudretail-staging', thresholds: { maxErrorRatio: 0.05, maxP99Ms: 250, minRequests: 20 }, windowMs: 120_000 });
  });

  it('when PROMETHEUS_URL, DEPLOY_REGISTRY and DEPLOY_AUDIT_FILE are set, then they are used', () => {
    const options = parseCli(['blue-green', '--env', 'staging', '--app', 'api-gateway', '--version', '9'], {
      PROMETHEUS_URL: 'http://prom:9090',
      DEPLOY_REGISTRY: 'registry.local/cr',
      DEPLOY_AUDIT_FILE: '/var/log/deploy.jsonl',
    });
    expect(options).toMatchObject({ prometheusUrl: 'http://prom:9090', image: 'registry.local/cr/api-gateway:9', auditFile: '/var/log/deploy.jsonl' });
  });

  it('when several flags are wrong, then every problem is reported at once', () => {
    const attempt = () => parseCli(['rolling', '--env', 'prod', '--app', 'Product Service', '--max-error-ratio', '2', '--window', 'soon'], {});
    expect(attempt).toThrow(UsageError);
    const message = (() => {
      try {
        attempt();
      } catch (error) {
        return (error as Error).message;
      }
    })();
    for (const flag of ['--env', '--app', '--version', '--max-error-ratio', '--window']) expect(message).toContain(flag);
  });
});

describe('actor of a deployment', () => {
  const noGit = () => undefined;

  it('when running in GitHub Actions, then the actor who triggered the run wins over the git identity', () => {
    expect(detectActor({ GITHUB_ACTIONS: 'true', GITHUB_ACTOR: 'octocat', USER: 'runner' }, () => 'CI Bot <bot@x>')).toEqual({ name: 'octocat', source: 'github-actions' });
  });

  it('when run by hand, then the git identity is used, and $USER without one', () => {
    expect(detectActor({ USER: 'ada' }, () => 'Ada <ada@cloudretail.com>')).toEqual({ name: 'Ada <ada@cloudretail.com>', source: 'git' });
    expect(detectActor({ USER: 'ada' }, noGit)).toEqual({ name: 'ada', source: 'USER' });
    expect(detectActor({}, noGit)).toEqual({ name: 'unknown', source: 'unknown' });
  });
});

describe('audit log', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'deploy-audit-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('when two runs happen, then each appends one JSON line with who, what, where, versions, figures, outcome and times', async () => {
    const auditFile = path.join(dir, 'deploy-audit.jsonl');
    const kubectl = recordingKubectl((args) => {
      if (args[0] === 'get' && args[1] === 'deployment') return { stdout: JSON.stringify({ spec: { replicas: 1, template: { spec: { containers: [{ image: 'r/p:1.0.0' }] } } }, status: { readyReplicas: 1 } }) };
      if (args[0] === 'get' && args[1] === 'pods') {
        return { stdout: JSON.stringify({ items: [{ metadata: { name: 'p-1' }, spec: { containers: [{ ports: [{ containerPort: 3002 }] }] }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }] }) };
      }
      return {};
    });
    const run = (version: string) =>
      runDeploy(parseCli(['rolling', '--env', 'staging', '--app', 'product-service', '--version', version, '--audit-file', auditFile], {}), {
        kubectl,
        metrics: { describe: 'fake', measure: async () => ({ requests: 100, errors: 0, errorRatio: 0, p99Ms: 42 }) },
        actor: { name: 'ada', source: 'USER' },
        log: () => undefined,
      });

    await run('1.1.0');
    await run('1.2.0');

    const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(records).toHaveLength(2);
    expect(records[1]).toMatchObject({
      actor: { name: 'ada', source: 'USER' },
      command: 'rolling',
      env: 'staging',
      namespace: 'cloudretail-staging',
      app: 'product-service',
      fromVersion: '1.0.0',
      toVersion: '1.2.0',
      dryRun: false,
      outcome: 'succeeded',
      verification: { thresholds: { maxErrorRatio: 0.01, maxP99Ms: 500 }, checks: [{ observations: { figures: { requests: 100, p99Ms: 42 } } }] },
    });
    expect(Date.parse(records[1].finishedAt)).toBeGreaterThanOrEqual(Date.parse(records[1].startedAt));
    expect(records[1].actions).toContain('kubectl set image deployment/product-service product-service=ghcr.io/cloudretail/product-service:1.2.0 -n cloudretail-staging');
  });

  it('when kubectl fails, then the run is recorded with outcome error and the message', async () => {
    const auditFile = path.join(dir, 'errors.jsonl');
    const kubectl = recordingKubectl(() => ({ ok: false, stderr: 'Unable to connect to the server' }));

    const { exitCode } = await runDeploy(parseCli(['verify', '--env', 'production', '--app', 'user-service', '--audit-file', auditFile], {}), {
      kubectl,
      actor: { name: 'ada', source: 'USER' },
      log: () => undefined,
    });

    expect(exitCode).toBe(1);
    expect(JSON.parse(readFileSync(auditFile, 'utf8'))).toMatchObject({ outcome: 'error', error: expect.stringContaining('Unable to connect to the server') });
  });
});
