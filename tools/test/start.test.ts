import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { Client } from 'pg';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from '@cloudretail/testing';

const root = path.resolve(__dirname, '../..');
const OFFSET = 21000; // gateway on 29080, services on 24001–24006: beside a developer's own `npm start`
const prefix = `start_${process.pid}_`;
const url = (port: number, p: string) => `http://127.0.0.1:${port + OFFSET}${p}`;

/** Its build is an Nx run of its own (the builds ran first: dependsOn ^build). */
function nestedNxEnv(): NodeJS.ProcessEnv {
  const { NX_INVOCATION_ROOT_PID: _root, ...env } = process.env;
  return env;
}

let child: ChildProcess;
let output = '';
let exit: Promise<number | null>;

async function dropDatabases() {
  const admin = new Client({ connectionString: TEST_POSTGRES_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${prefix}%`]);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

beforeAll(async () => {
  child = spawn(process.execPath, ['tools/scripts/start.mjs'], {
    cwd: root,
    env: {
      ...nestedNxEnv(),
      START_PORT_OFFSET: String(OFFSET),
      START_DATABASE_PREFIX: prefix,
      POSTGRES_URL: TEST_POSTGRES_URL,
      REDIS_URL: TEST_REDIS_URL,
      JWT_SECRET: 'start-test-secret-0123456789abcdef',
      ADMIN_EMAIL: 'admin@start.test',
      ADMIN_PASSWORD: 'start-test-password',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 240_000;
  while (!output.includes('CloudRetail is up')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 250_000);

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await dropDatabases();
}, 60_000);

describe('npm start', () => {
  it('brings up every app ready, seeds the demo catalog, creates the admin and prints the gateway URL', async () => {
    expect(output).toContain(`CloudRetail is up: http://localhost:${8080 + OFFSET}`);
    for (const port of [8080, 3001, 3002, 3003, 3004, 3005, 3006]) {
      expect({ port, status: (await fetch(url(port, '/health/ready'))).status }).toEqual({ port, status: 200 });
    }
    const products = (await (await fetch(url(8080, '/api/products'))).json()) as { total: number };
    expect(products.total).toBe(5);
    const login = await fetch(url(8080, '/api/auth/login'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@start.test', password: 'start-test-password' }),
    });
    expect(login.status).toBe(200);
    expect(((await login.json()) as { user: { role: string } }).user.role).toBe('admin');
  });

  it('when interrupted (Ctrl-C), then every app drains and the process exits 0', async () => {
    child.kill('SIGINT');
    expect(await exit).toBe(0);
    expect(output).toContain('[start]\x1b[0m stopped');
    await expect(fetch(url(8080, '/health/live'))).rejects.toThrow();
  }, 60_000);
});
