import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TEST_REDIS_URL, createTestDatabase } from '@cloudretail/testing';
import { APPS, APP_NAMES, type AppName, SECRET_STAND_INS, appConfigs, run, workspaceRoot } from './support';
import { parseDockerfile } from './dockerfile';

/**
 * Runs each built app the way its image does: the esbuild bundle with only the production
 * dependencies of its pruned package.json (`npm ci --omit=dev`), started as `node main.js`
 * with the image's ENV. A runtime dependency missing from the pruned package.json, a bundle
 * that needs the workspace, or a SIGTERM that does not end in exit 0 fails here.
 */

const buildable = APP_NAMES.filter((app) => {
  const project = path.join(workspaceRoot, 'apps', app, 'project.json');
  return existsSync(project) && !!JSON.parse(readFileSync(project, 'utf8')).targets?.build && existsSync(path.join(workspaceRoot, 'apps', app, 'Dockerfile'));
});
const notYet = APP_NAMES.filter((app) => !buildable.includes(app));

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });

/** The ENV instructions of the image's runtime stage, e.g. NODE_ENV=production and PORT. */
function imageEnv(app: AppName): Record<string, string> {
  const runtime = parseDockerfile(path.join(workspaceRoot, 'apps', app, 'Dockerfile')).stages.at(-1)!;
  return Object.fromEntries(runtime.instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => i.args.split(/\s+/).map((kv) => kv.split('=') as [string, string])));
}

async function waitFor(url: string, child: ChildProcess, log: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode} before ${url} was ready:\n${log()}`);
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms:\n${log()}`);
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));

/** `cmd args` in `cwd`, resolving with its exit code; output is kept for the error message. */
function runAsync(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} in ${cwd} exited ${code}\n${out}`))));
  });
}

const installed = new Map<AppName, string>();

// One build of every app (Nx runs them in parallel and caches), then each image's prod-deps
// stage (`npm ci --omit=dev` of the pruned package.json, offline from the npm cache when it can),
// two at a time: doing this app by app dominated the suite's run time.
beforeAll(async () => {
  if (notYet.length) console.info(`not run as images yet (no build target or Dockerfile): ${notYet.join(', ')}`);
  run('npx', ['nx', 'run-many', '-t', 'build', '-p', ...buildable, '--parallel=2', '--outputStyle=static']);
  const queue = [...buildable];
  const worker = async () => {
    for (let app = queue.shift(); app; app = queue.shift()) {
      const dir = mkdtempSync(path.join(os.tmpdir(), `image-${app}-`));
      cpSync(path.join(workspaceRoot, 'dist/apps', app), dir, { recursive: true });
      installed.set(app, dir);
      await runAsync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], dir);
    }
  };
  await Promise.all([worker(), worker()]);
}, 600_000);

afterAll(() => {
  for (const dir of installed.values()) rmSync(dir, { recursive: true, force: true });
});

test('at least the reference app is buildable, so this suite checks something', () => {
  expect(buildable).toContain('product-service');
});

describe.each(buildable)('%s run as its image CMD', (app) => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;

  beforeAll(() => {
    dir = installed.get(app)!;
  });

  afterAll(async () => {
    await db?.drop();
  });

  test('when migrated by the init-container command and started with node main.js, then it gets ready and exits 0 on SIGTERM', async () => {
    const config = (await appConfigs()).find((c) => c.app === app);
    const keys = new Set(config?.vars.map((v) => v.variable) ?? []);
    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: os.tmpdir(),
      ...imageEnv(app),
      PORT: String(port),
      LOG_LEVEL: 'warn',
      SHUTDOWN_DELAY_MS: '200',
      SHUTDOWN_TIMEOUT_MS: '5000',
      REDIS_URL: TEST_REDIS_URL,
      JWT_SECRET: SECRET_STAND_INS.JWT_SECRET,
    };
    if (APPS[app].database && keys.has('DATABASE_URL')) {
      db = await createTestDatabase(app.replace(/-/g, '_'));
      env.DATABASE_URL = db.url;
    }
    for (const v of config?.vars ?? []) if (v.required && !(v.variable in env)) env[v.variable] = SECRET_STAND_INS[v.variable] ?? 'stand-in-value-0123456789';
    const node = (args: string[], extra: Record<string, string> = {}) => spawn('node', ['main.js', ...args], { cwd: dir, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });

    // Arrange: the migration as Kubernetes runs it (init container), then MIGRATE_ON_START=false.
    if (env.DATABASE_URL) {
      for (const command of [['migrate', 'up'], ['migrate', 'status']]) {
        const migrate = node(command, { MIGRATE_ON_START: 'false' });
        let out = '';
        migrate.stdout!.on('data', (d) => (out += d));
        migrate.stderr!.on('data', (d) => (out += d));
        expect({ command, code: await exitOf(migrate), out: (await exitOf(migrate)) === 0 ? '' : out }).toEqual({ command, code: 0, out: '' });
      }
    }

    // Act
    const child = node([], env.DATABASE_URL ? { MIGRATE_ON_START: 'false' } : {});
    let log = '';
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
    try {
      await waitFor(`http://127.0.0.1:${port}/health/ready`, child, () => log);
      const live = await fetch(`http://127.0.0.1:${port}/health/live`);
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      const exposition = await metrics.text();
      child.kill('SIGTERM');
      const code = await exitOf(child);

      // Assert
      expect(live.status).toBe(200);
      expect(metrics.status).toBe(200);
      expect(exposition).toContain('http_request_duration_seconds');
      expect({ code, log: code === 0 ? '' : log }).toEqual({ code: 0, log: '' });
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 120_000);
});
