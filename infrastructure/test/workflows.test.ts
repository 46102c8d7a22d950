import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { run, workspaceRoot } from './support';

/**
 * npm scripts the workflows call that a later issue adds (kept explicit, and printed, so
 * nothing else can be missing silently). Contract for tools/deploy:
 *   npm run deploy -- release  --env <environment> --version <tag> --apps <a,b>
 *   npm run deploy -- verify   --env <environment> --version <tag>
 *   npm run deploy -- rollback --env <environment> --apps <a,b>
 */
const LATER_SCRIPTS: Record<string, string> = { deploy: 'tools/deploy (release, verify, rollback), a later issue' };

interface Step {
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  name?: string;
}
interface Job {
  steps: Step[];
  if?: string;
  needs?: string | string[];
  environment?: { name: string };
  services?: Record<string, { image: string }>;
  strategy?: { matrix: Record<string, string[]>; 'max-parallel'?: number };
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
}

const workflowsDir = path.join(workspaceRoot, '.github/workflows');
const load = (file: string): Workflow => parse(readFileSync(path.join(workflowsDir, file), 'utf8'));
const ci = load('ci.yml');
const deploy = load('deploy.yml');
const workflows = Object.fromEntries(readdirSync(workflowsDir).map((f) => [f, load(f)]));
const scripts = Object.values(workflows).flatMap((w) => Object.values(w.jobs).flatMap((j) => j.steps.flatMap((s) => (s.run ? [s.run] : []))));
const steps = (job: Job) => job.steps;
const deployableApps = readdirSync(path.join(workspaceRoot, 'apps')).filter((app) => existsSync(path.join(workspaceRoot, 'apps', app, 'Dockerfile')));
const packageScripts = JSON.parse(readFileSync(path.join(workspaceRoot, 'package.json'), 'utf8')).scripts as Record<string, string>;

test('every npm script the workflows run exists in package.json, or is on the explicit list of scripts a later issue adds', () => {
  const used = [...new Set(scripts.flatMap((s) => [...s.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1])))];
  const later = used.filter((s) => !(s in packageScripts));
  console.info(`npm scripts the workflows use that do not exist yet (allowed): ${later.map((s) => `${s} — ${LATER_SCRIPTS[s]}`).join('; ') || 'none'}`);

  expect(used.length).toBeGreaterThan(0);
  expect(later.filter((s) => !(s in LATER_SCRIPTS))).toEqual([]);
});

test('every nx target the workflows run is defined by some project', () => {
  const targets = [...new Set(scripts.flatMap((s) => [...s.matchAll(/nx (?:affected|run-many)\s+-t\s+([\w\s-]+?)(?:\s+--|$)/gm)].flatMap((m) => m[1].trim().split(/\s+/))))];

  expect(targets.sort()).toEqual(['build', 'lint', 'test', 'typecheck']);
  for (const target of targets) {
    const projects = JSON.parse(run('npx', ['nx', 'show', 'projects', '--with-target', target, '--json']));
    expect({ target, defined: projects.length > 0 }).toEqual({ target, defined: true });
  }
});

test('every repository path the workflows name exists', () => {
  const paths = [...new Set(scripts.flatMap((s) => [...s.matchAll(/(?:^|[\s"'])((?:tools|apps|infrastructure|libs)\/[\w./-]+)/g)].map((m) => m[1])))].filter((p) => !p.includes('*'));

  expect(paths).toContain('tools/build-images/build-images.sh');
  expect(paths.filter((p) => !existsSync(path.join(workspaceRoot, p)))).toEqual([]);
});

test('ci.yml runs the affected lint, typecheck, test and build with full history, cached npm, Postgres 15, Redis and the tools the suite needs', () => {
  const [job] = Object.values(ci.jobs);
  const uses = steps(job).map((s) => s.uses ?? '');
  const runs = steps(job).map((s) => s.run ?? '').join('\n');

  expect(Object.keys(ci.on).sort()).toEqual(['pull_request', 'push']);
  expect(steps(job).find((s) => s.uses?.startsWith('actions/checkout@'))?.with?.['fetch-depth']).toBe(0);
  expect(uses.some((u) => u.startsWith('nrwl/nx-set-shas@'))).toBe(true);
  expect(steps(job).find((s) => s.uses?.startsWith('actions/setup-node@'))?.with).toMatchObject({ cache: 'npm', 'node-version': expect.stringMatching(/^20\./) });
  expect(job.services?.postgres.image).toMatch(/^postgres:15\./);
  expect(job.services?.redis.image).toMatch(/^redis:/);
  for (const tool of ['shellcheck', 'yamllint', 'prometheus', 'nginx-light', 'librdkafka-dev', 'redis-server']) expect(runs).toMatch(new RegExp(`apt-get install[^\\n]*\\b${tool}\\b`));
  // The manifest tests need the strict schemas; GitHub has no ../shared beside the checkout.
  expect(runs).toMatch(/K8S_SCHEMAS_DIR=/);
  expect(runs).toContain('npm ci');
  expect(runs).toMatch(/npx nx affected -t lint typecheck test build\b/);
});

test('the image matrix of deploy.yml lists exactly the deployable apps (apps with a Dockerfile)', () => {
  const matrix = deploy.jobs.images.strategy!.matrix.app;

  expect([...matrix].sort()).toEqual(deployableApps.sort());
  const build = steps(deploy.jobs.images).find((s) => s.run?.includes('build-images.sh'))!;
  expect(build.run).toMatch(/build-images\.sh --push .*\$\{\{ matrix\.app \}\}/);
});

test('deploy.yml releases staging from develop and production from main behind an approval, region by region, with verify and automatic rollback', () => {
  const regions = readdirSync(path.join(workspaceRoot, 'infrastructure/kubernetes/overlays/production')).filter((d) => d !== 'base');
  const production = deploy.jobs['deploy-production'];

  expect(deploy.jobs['deploy-staging'].if).toContain("github.ref == 'refs/heads/develop'");
  expect(deploy.jobs['approve-production'].if).toContain("github.ref == 'refs/heads/main'");
  expect(deploy.jobs['approve-production'].environment?.name).toBe('production');
  expect(production.needs).toContain('approve-production');
  expect([...production.strategy!.matrix.region].sort()).toEqual(regions.sort());
  expect(production.strategy!['max-parallel']).toBe(1);
  for (const job of [deploy.jobs['deploy-staging'], production]) {
    const runs = steps(job).map((s) => s.run ?? '');
    expect(runs.some((r) => r.includes('rollout status') && r.includes('rollout.argoproj.io'))).toBe(true);
    expect(runs.some((r) => r.includes('curl --fail') && r.includes('/health/ready'))).toBe(true);
    expect(runs.some((r) => r.includes('npm run deploy -- verify'))).toBe(true);
    const rollback = steps(job).find((s) => s.run?.includes('npm run deploy -- rollback'));
    expect(rollback?.if).toBe('failure()');
  }
});
