import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { APP_NAMES, k8sDir, kustomize, nestedNxEnv, parseManifests, run, workspaceRoot } from './support';

interface Step {
  uses?: string;
  run?: string;
  if?: string;
  id?: string;
  with?: Record<string, string | boolean | number>;
  env?: Record<string, string>;
  name?: string;
}
interface Job {
  steps?: Step[];
  uses?: string;
  with?: Record<string, string>;
  if?: string;
  needs?: string | string[];
  environment?: { name: string };
  services?: Record<string, { image: string }>;
  strategy?: { matrix: Record<string, string[]>; 'max-parallel'?: number };
  permissions?: Record<string, string>;
  env?: Record<string, string>;
}
interface Workflow {
  on: Record<string, { inputs?: Record<string, unknown> } | null>;
  jobs: Record<string, Job>;
  env?: Record<string, string>;
  permissions?: Record<string, string>;
}

const workflowsDir = path.join(workspaceRoot, '.github/workflows');
const files = readdirSync(workflowsDir).filter((f) => f.endsWith('.yml'));
const load = (file: string): Workflow => parse(readFileSync(path.join(workflowsDir, file), 'utf8'));
const workflows = Object.fromEntries(files.map((f) => [f, load(f)]));
const ci = workflows['ci.yml'];
const deploy = workflows['deploy.yml'];
const release = workflows['release-environment.yml'];
const allJobs = Object.entries(workflows).flatMap(([file, w]) => Object.entries(w.jobs).map(([name, job]) => ({ file, name, job })));
const allSteps = allJobs.flatMap(({ file, name, job }) => (job.steps ?? []).map((step) => ({ file, job: name, step })));
const runs = allSteps.flatMap(({ step }) => (step.run ? [step.run] : []));
const deployableApps = readdirSync(path.join(workspaceRoot, 'apps')).filter((app) => existsSync(path.join(workspaceRoot, 'apps', app, 'Dockerfile')));
/** The environments of the release path, in order (tools/deploy ENVIRONMENTS, infrastructure/argocd). */
const STAGES = ['staging', 'production-eu-west', 'production-us-east'];

/** A `run:` that invokes something of this repository: an npm script, npx, or a script under tools/. */
const PROJECT_COMMAND = /(^|[\s;(|&$])(npm run |npx |node tools\/|tools\/)/m;

// ---------- executing the workflows' own commands in dry-run mode ----------

interface Context {
  values: Record<string, string>;
  env: Record<string, string>;
}

/** `${{ … }}` with realistic values; an expression the test does not know fails it (so each new one is deliberate). */
function substitute(text: string, ctx: Context): string {
  return text.replace(/\$\{\{\s*(.+?)\s*\}\}/g, (_, expr: string) => {
    if (expr in ctx.values) return ctx.values[expr];
    if (expr.startsWith('secrets.')) return 'redacted';
    if (expr.startsWith('env.') && expr.slice(4) in ctx.env) return ctx.env[expr.slice(4)];
    throw new Error(`unknown expression \${{ ${expr} }}`);
  });
}

interface Executed {
  where: string;
  command: string;
  status: number | null;
  output: string;
}

/**
 * Runs every job of `workflow` in order the way a runner would, in `dir` (the repository's
 * entries symlinked, so files the steps write stay out of the working tree): project commands
 * are executed with DRY_RUN=1 and the workflow's exact arguments; upload/download-artifact are
 * simulated by copying files; other steps (checkout, installs, cluster credentials) are skipped.
 */
function runWorkflow(file: string, dir: string, values: Record<string, string>, executed: Executed[], inputs: Record<string, string> = {}): void {
  const workflow = workflows[file];
  const artifacts = path.join(dir, '.artifacts');
  mkdirSync(artifacts, { recursive: true });
  for (const [jobName, job] of Object.entries(workflow.jobs)) {
    const ctxValues = { ...values, ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`inputs.${k}`, v])) };
    if (job.uses) {
      const called = job.uses.replace('./.github/workflows/', '');
      runWorkflow(called, dir, values, executed, Object.fromEntries(Object.entries(job.with ?? {}).map(([k, v]) => [k, substitute(String(v), { values: ctxValues, env: {} })])));
      continue;
    }
    const matrix = job.strategy?.matrix ?? {};
    const combos = Object.keys(matrix).length ? Object.entries(matrix).flatMap(([key, list]) => list.map((v) => ({ [`matrix.${key}`]: v }))) : [{}];
    for (const combo of combos) {
      const base: Context = { values: { ...ctxValues, ...combo }, env: {} };
      const env: Record<string, string> = {};
      for (const source of [workflow.env, job.env]) for (const [k, v] of Object.entries(source ?? {})) env[k] = substitute(String(v), { ...base, env });
      for (const step of job.steps ?? []) {
        const ctx: Context = { ...base, env };
        if (step.uses?.startsWith('actions/upload-artifact@')) {
          const name = substitute(String(step.with!.name), ctx);
          const from = path.join(dir, substitute(String(step.with!.path), ctx));
          if (existsSync(from)) {
            mkdirSync(path.join(artifacts, name), { recursive: true });
            copyFileSync(from, path.join(artifacts, name, path.basename(from)));
          }
          continue;
        }
        if (step.uses?.startsWith('actions/download-artifact@')) {
          const pattern = new RegExp(`^${String(step.with!.pattern).replace(/\*/g, '.*')}$`);
          const into = path.join(dir, String(step.with!.path));
          mkdirSync(into, { recursive: true });
          for (const name of readdirSync(artifacts).filter((n) => pattern.test(n))) {
            for (const f of readdirSync(path.join(artifacts, name))) copyFileSync(path.join(artifacts, name, f), path.join(into, f));
          }
          continue;
        }
        if (!step.run || !PROJECT_COMMAND.test(step.run)) continue;
        // nx has no dry run for tasks; the targets it runs are checked by 'every nx target …' below.
        if (/nx affected -t /.test(step.run)) continue;
        const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, substitute(String(v), ctx)]));
        const command = substitute(step.run, ctx);
        const result = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', command], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 120_000,
          env: {
            ...nestedNxEnv(),
            ...env,
            ...stepEnv,
            DRY_RUN: '1',
            CI: 'true',
            GITHUB_ACTIONS: 'true',
            GITHUB_SHA: values['github.sha'],
            GITHUB_ACTOR: 'octocat',
            GITHUB_REF: 'refs/heads/main',
            GITHUB_OUTPUT: path.join(dir, '.github-output'),
            GITHUB_ENV: path.join(dir, '.github-env'),
            RUNNER_TEMP: path.join(dir, '.runner-temp'),
            NX_BASE: 'HEAD~1',
            NX_HEAD: 'HEAD',
          },
        });
        executed.push({
          where: `${file} ${jobName}${Object.values(combo).length ? ` (${Object.values(combo).join(', ')})` : ''}${inputs.environment ? ` [${inputs.environment}]` : ''}: ${step.name ?? step.id ?? ''}`,
          command,
          status: result.status,
          output: `${result.stdout}\n${result.stderr}`.slice(-3000),
        });
      }
    }
  }
}

/** A directory that looks like the checkout (every top-level entry symlinked) where steps may write. */
function scratchCheckout(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'workflow-dry-run-'));
  for (const entry of readdirSync(workspaceRoot)) symlinkSync(path.join(workspaceRoot, entry), path.join(dir, entry));
  mkdirSync(path.join(dir, '.runner-temp'));
  return dir;
}

describe('every project command the workflows run, executed with their exact arguments in dry-run mode', () => {
  const executed: Executed[] = [];
  let dir: string;
  beforeAll(() => {
    dir = scratchCheckout();
    const values = {
      'github.sha': run('git', ['rev-parse', 'HEAD']).trim(),
      'github.actor': 'octocat',
      'github.ref': 'refs/heads/main',
      'inputs.all': 'false',
      'needs.plan.outputs.apps': 'api-gateway,product-service',
      'steps.affected.outputs.build': 'true',
    };
    for (const file of Object.keys(workflows).filter((f) => !('workflow_call' in workflows[f].on))) runWorkflow(file, dir, values, executed);
  }, 600_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('each exits 0', () => {
    console.info(`executed ${executed.length} workflow commands:\n${executed.map((e) => `  ${e.status} ${e.where}: ${e.command.split('\n')[0]}`).join('\n')}`);

    expect(executed.filter((e) => e.status !== 0).map((e) => ({ where: e.where, command: e.command, status: e.status, output: e.output }))).toEqual([]);
  });

  test('they cover the whole release path: build and push by digest, then per stage promote, wait, smoke, verify and the rollback steps', () => {
    const label = (c: string) =>
      c.includes('previous-digests.json') && !c.includes('--previous-out')
        ? (c.includes('deploy -- promote') ? 'revert' : 'wait for the revert')
        : c.includes('deploy -- promote')
          ? 'promote'
          : (/deploy -- (rollout status|verify|rollback)/.exec(c)?.[1] ?? (c.includes('test:smoke') ? 'smoke' : c));

    expect(executed.filter((e) => e.command.includes('build-images.sh --push')).map((e) => e.where.split(' (')[1]?.split(')')[0]).sort()).toEqual([...deployableApps].sort());
    for (const stage of STAGES) {
      const of = executed.filter((e) => e.where.includes(`[${stage}]`)).map((e) => label(e.command));
      expect({ stage, commands: of }).toEqual({ stage, commands: ['promote', 'rollout status', 'smoke', 'verify', 'rollback', 'revert', 'wait for the revert'] });
    }
  });

  test('the promotion dry run names the environment branch Argo CD syncs and the digests the build wrote', () => {
    for (const stage of STAGES) {
      const promotion = executed.find((e) => e.where.includes(`[${stage}]`) && e.command.includes('deploy -- promote') && e.command.includes('--source'))!;
      expect(promotion.output).toContain(`[dry-run] git push origin HEAD:refs/heads/env/${stage}`);
      expect(promotion.output).toMatch(/product-service: \S+ -> ghcr\.io\/cloudretail\/product-service@sha256:[0-9a-f]{64}/);
    }
  });

  test('when a step calls the CLI the way the old deploy.yml did, then the same harness fails it (defect 1 would fail the suite)', () => {
    const result = spawnSync('bash', ['-eo', 'pipefail', '-c', 'npm run deploy -- release --env "$ENVIRONMENT" --version "$VERSION" --apps "$APPS"'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...nestedNxEnv(), DRY_RUN: '1', ENVIRONMENT: 'production-eu-west', VERSION: 'v1.0.0-abc1234', APPS: 'api-gateway,product-service' },
    });

    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('unknown command "release"');
  });
});

test('every uses: is a local workflow or pinned by a 40-character commit SHA with its version as a comment', () => {
  const unpinned = files.flatMap((file) =>
    readFileSync(path.join(workflowsDir, file), 'utf8')
      .split('\n')
      .filter((line) => /^\s*(-\s+)?uses:/.test(line))
      .filter((line) => !/uses:\s+\.\/\.github\/workflows\/[\w-]+\.yml\s*$/.test(line) && !/uses:\s+[\w.-]+\/[\w./-]+@[0-9a-f]{40}\s+#\s+v\d+(\.\d+)*\s*$/.test(line))
      .map((line) => `${file}: ${line.trim()}`),
  );

  expect(allSteps.filter(({ step }) => step.uses).length).toBeGreaterThan(10);
  expect(unpinned).toEqual([]);
});

describe('least privilege', () => {
  const jobsWithSteps = allJobs.filter(({ job }) => job.steps);
  const installs = (job: Job) => (job.steps ?? []).filter((s) => /\bnpm (ci|install)\b/.test(s.run ?? ''));

  test('no workflow grants anything by default, and every job states its permissions', () => {
    for (const [file, w] of Object.entries(workflows)) expect({ file, permissions: w.permissions }).toEqual({ file, permissions: {} });
    for (const { file, name, job } of allJobs) expect({ job: `${file} ${name}`, declared: !!job.permissions }).toEqual({ job: `${file} ${name}`, declared: true });
  });

  test('nothing holds id-token; only the image build (which installs no packages) may write packages; jobs that can push install without scripts', () => {
    for (const { file, name, job } of allJobs) {
      const where = `${file} ${name}`;
      expect({ where, idToken: job.permissions?.['id-token'] }).toEqual({ where, idToken: undefined });
      if (job.permissions?.packages === 'write') expect({ where, installs: installs(job).length }).toEqual({ where, installs: 0 });
      if (job.permissions?.contents === 'write' && job.steps) {
        for (const step of installs(job)) expect({ where, run: step.run }).toEqual({ where, run: expect.stringContaining('--ignore-scripts') });
      }
      // Only jobs that push (git) keep the checkout's credentials.
      for (const step of (job.steps ?? []).filter((s) => s.uses?.startsWith('actions/checkout@'))) {
        if (job.permissions?.contents !== 'write') expect({ where, persist: step.with?.['persist-credentials'] }).toEqual({ where, persist: false });
      }
    }
    expect(jobsWithSteps.filter(({ job }) => job.permissions?.packages === 'write').map(({ name }) => name)).toEqual(['images']);
  });

  test('a reusable workflow never asks for more than its callers grant', () => {
    for (const { name, job } of allJobs.filter(({ job }) => job.uses)) {
      const called = workflows[job.uses!.replace('./.github/workflows/', '')];
      for (const inner of Object.values(called.jobs)) {
        for (const [scope, level] of Object.entries(inner.permissions ?? {})) {
          expect({ caller: name, scope, granted: level === 'read' ? ['read', 'write'].includes(job.permissions?.[scope] ?? '') : job.permissions?.[scope] === 'write' }).toEqual({ caller: name, scope, granted: true });
        }
      }
    }
  });
});

test('every npm script the workflows run exists in package.json', () => {
  const packageScripts = JSON.parse(readFileSync(path.join(workspaceRoot, 'package.json'), 'utf8')).scripts as Record<string, string>;
  const used = [...new Set(runs.flatMap((s) => [...s.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1])))];

  expect(used.sort()).toEqual(['deploy', 'test:smoke']);
  expect(used.filter((s) => !(s in packageScripts))).toEqual([]);
});

test('every nx target the workflows run is defined by some project', () => {
  const targets = [...new Set(runs.flatMap((s) => [...s.matchAll(/nx (?:affected|run-many)\s+-t\s+([\w\s-]+?)(?:\s+--|$)/gm)].flatMap((m) => m[1].trim().split(/\s+/))))];

  expect(targets.sort()).toEqual(['build', 'lint', 'test', 'typecheck']);
  for (const target of targets) {
    const projects = JSON.parse(run('npx', ['nx', 'show', 'projects', '--with-target', target, '--json']));
    expect({ target, defined: projects.length > 0 }).toEqual({ target, defined: true });
  }
});

test('every job sets up Node from .nvmrc, which names Node 24', () => {
  const setups = allSteps.filter(({ step }) => step.uses?.startsWith('actions/setup-node@'));

  expect(setups.length).toBeGreaterThanOrEqual(3);
  for (const { file, job, step } of setups) expect({ where: `${file} ${job}`, with: step.with }).toEqual({ where: `${file} ${job}`, with: { 'node-version-file': '.nvmrc', cache: 'npm' } });
  expect(readFileSync(path.join(workspaceRoot, '.nvmrc'), 'utf8').trim()).toMatch(/^24(\.|$)/);
});

test('ci.yml runs the affected lint, typecheck, test and build with full history, Postgres 15, Redis and the tools the suite needs', () => {
  const [job] = Object.values(ci.jobs);
  const steps = job.steps!;
  const text = steps.map((s) => s.run ?? '').join('\n');

  expect(Object.keys(ci.on).sort()).toEqual(['pull_request', 'push']);
  expect(steps.find((s) => s.uses?.startsWith('actions/checkout@'))?.with?.['fetch-depth']).toBe(0);
  expect(steps.some((s) => s.uses?.startsWith('nrwl/nx-set-shas@'))).toBe(true);
  expect(job.services?.postgres.image).toMatch(/^postgres:15\./);
  expect(job.services?.redis.image).toMatch(/^redis:/);
  for (const tool of ['shellcheck', 'yamllint', 'prometheus', 'nginx-light', 'librdkafka-dev', 'redis-server']) expect(text).toMatch(new RegExp(`apt-get install[^\\n]*\\b${tool}\\b`));
  // The manifest tests need the strict schemas, for every kind the overlays render.
  expect(text).toMatch(/K8S_SCHEMAS_DIR=/);
  for (const crd of ['rollout_v1alpha1', 'analysistemplate_v1alpha1', 'application_v1alpha1', 'prometheusrule_v1', 'servicemonitor_v1', 'podmonitor_v1']) expect(text).toContain(crd);
  expect(text).toMatch(/npx nx affected -t lint typecheck test build\b/);
});

describe('the release path of deploy.yml', () => {
  test('images are built once, only by build-images.sh, pushed with their digests recorded, for exactly the deployable apps', () => {
    const images = deploy.jobs.images;
    const build = images.steps!.find((s) => s.run?.includes('build-images.sh'))!;

    expect([...images.strategy!.matrix.app].sort()).toEqual(deployableApps.sort());
    expect(build.run).toMatch(/build-images\.sh --push .*--digests "digests-\$\{APP\}\.json" "\$APP"/);
    expect(images.steps!.some((s) => s.uses?.startsWith('aquasecurity/setup-trivy@'))).toBe(true);
    expect(images.steps!.find((s) => s.uses?.startsWith('actions/upload-artifact@'))?.with?.path).toBe('digests-${{ matrix.app }}.json');
    // No other image build anywhere.
    expect(runs.filter((r) => /docker (build|push)|buildx build/.test(r))).toEqual([]);
    expect(runs.filter((r) => r.includes('build-images.sh --push'))).toHaveLength(1);
  });

  test('stages run staging → production-eu-west → production-us-east, each one needing the previous one, all through one reusable job', () => {
    const stageJobs = Object.entries(deploy.jobs).filter(([, job]) => job.uses === './.github/workflows/release-environment.yml');

    expect(stageJobs.map(([name, job]) => [name, job.with?.environment])).toEqual(STAGES.map((s) => [s, s]));
    expect(stageJobs.map(([, job]) => job.needs)).toEqual(['images', 'staging', 'production-eu-west']);
    expect(Object.keys(deploy.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect((deploy.on.push as unknown as { branches: string[] }).branches).toEqual(['main']);
  });

  test('a stage runs in the GitHub environment of its name (required reviewers hold production), promotes, waits, smoke-tests, verifies, rolls back on failure and keeps the audit log', () => {
    const job = release.jobs.release;
    const steps = job.steps!;
    const index = (re: RegExp) => steps.findIndex((s) => re.test(s.run ?? ''));

    expect(job.environment?.name).toBe('${{ inputs.environment }}');
    const order = [
      /deploy -- promote .*--source/,
      /deploy -- rollout status --env "\$DEPLOY_ENV" --digests digests /,
      /npm run test:smoke -- --env "\$DEPLOY_ENV"/,
      /deploy -- verify/,
      /deploy -- rollback/,
      /deploy -- promote --env "\$DEPLOY_ENV" --digests previous-digests\.json/,
      /deploy -- rollout status --env "\$DEPLOY_ENV" --digests previous-digests\.json/,
    ].map(index);
    expect(order.every((i, n) => i >= 0 && (n === 0 || i > order[n - 1]))).toBe(true);
    for (const i of order.slice(-3)) expect(steps[i].if).toBe("failure() && steps.promote.outcome == 'success'");
    const audit = steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'))!;
    expect(audit.if).toBe('always()');
    expect(audit.with?.path).toBe(job.env!.DEPLOY_AUDIT_FILE);
  });
});

test('tools/smoke/environments.json points every stage at a host its overlay routes to', () => {
  const environments = JSON.parse(readFileSync(path.join(workspaceRoot, 'tools/smoke/environments.json'), 'utf8')) as Record<string, string>;

  expect(Object.keys(environments).sort()).toEqual([...STAGES, 'local'].sort());
  for (const stage of STAGES) {
    const overlay = stage === 'staging' ? 'overlays/staging' : `overlays/production/${stage.replace('production-', '')}`;
    const ingress = parseManifests(kustomize(path.join(k8sDir, overlay))).find((o) => o.kind === 'Ingress')!;
    expect({ stage, routed: ingress.spec.rules.map((r: { host: string }) => r.host) }).toEqual({ stage, routed: expect.arrayContaining([new URL(environments[stage]).host]) });
    expect(environments[stage]).toMatch(/^https:\/\//);
  }
  expect(APP_NAMES.length).toBe(deployableApps.length);
});

// Keeps the scratch writes honest: nothing the dry runs produce lands in the working tree.
afterAll(() => {
  for (const leftover of ['digests', 'previous-digests.json', 'deploy-audit-staging.jsonl']) expect({ leftover, inTree: existsSync(path.join(workspaceRoot, leftover)) }).toEqual({ leftover, inTree: false });
});
