import { spawnSync } from 'node:child_process';
import path from 'node:path';
import request from 'supertest';
import { z } from '@cloudretail/config';
import { ConfigError, dataServiceBase, port } from '@cloudretail/config';
import { createApp, finishApp } from '@cloudretail/http';
import { TEST_REDIS_URL, createTestDatabase, testEnv } from '@cloudretail/testing';
import { type ServiceDefinition, startService } from '../src';

const schema = z.object({ ...dataServiceBase, PORT: port(0) });
const service: ServiceDefinition<typeof schema> = {
  name: 'runtime-test',
  schema,
  migrations: [{ name: '001-t', up: ({ sql }) => sql('CREATE TABLE t (id int)'), down: ({ sql }) => sql('DROP TABLE t') }],
  async setup({ logger, metrics, sequelize }) {
    const app = createApp({ logger, metrics });
    app.get('/count', async (_req, res) => {
      const [rows] = await sequelize.query('SELECT count(*)::int AS n FROM t');
      res.json(rows[0]);
    });
    return { app: finishApp(app) };
  },
};

describe('startService', () => {
  it('creates and migrates the database, serves the app and reports Postgres and Redis in readiness', async () => {
    const db = await createTestDatabase('runtime');
    await db.drop(); // startService must create it again
    const running = await startService(service, testEnv(db.url));
    try {
      expect((await request(running.url).get('/count')).body).toEqual({ n: 0 });
      const ready = await request(running.url).get('/health/ready');
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({ postgres: { status: 'up' }, redis: { status: 'up' } });
    } finally {
      await running.stop();
      await db.drop();
    }
  });

  it('listens on HOST: with 127.0.0.1 (what npm start sets) nothing answers on other interfaces', async () => {
    const db = await createTestDatabase('runtime_host');
    const running = await startService(service, { ...testEnv(db.url), HOST: '127.0.0.1' });
    try {
      expect(running.server.address()).toMatchObject({ address: '127.0.0.1' });
    } finally {
      await running.stop();
      await db.drop();
    }
  });

  it('when configuration is bad, then it fails before touching anything, naming the variables', async () => {
    await expect(startService(service, { PORT: 'x' })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('a service process with bad configuration', () => {
  it('exits 78 with one line naming every offending variable, and no stack trace', () => {
    const main = path.join(__dirname, 'fixtures/service-main.ts');
    const result = spawnSync(process.execPath, ['--import', 'tsx', main], {
      cwd: path.join(__dirname, '../../..'),
      env: { PATH: process.env.PATH, DATABASE_URL: 'not a url', JWKS_URL: 'not a url', PORT: '99999' },
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(result.status).toBe(78);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^fixture-service: Invalid configuration: /);
    for (const variable of ['DATABASE_URL', 'JWKS_URL', 'PORT']) expect(result.stderr).toContain(`${variable}: `);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('a service process whose Postgres or Redis does not answer', () => {
  const runFixture = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures/service-main.ts')], {
      cwd: path.join(__dirname, '../../..'),
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
      timeout: 20000,
    });

  it('when Postgres does not answer, then one line names the URL tried (password hidden) and DATABASE_URL, and the exit code is 1', () => {
    const result = runFixture({ DATABASE_URL: 'postgres://app:s3cret-pw@127.0.0.1:1/cloudretail_fixture', REDIS_URL: TEST_REDIS_URL });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'fixture-service: cannot reach PostgreSQL at postgres://app:***@127.0.0.1:1/cloudretail_fixture (connect ECONNREFUSED 127.0.0.1:1). Start PostgreSQL there, or set DATABASE_URL to one that runs.\n',
    );
  });

  it('when Redis does not answer, then one line names the URL tried (password hidden) and REDIS_URL, with no reconnect warnings before it', async () => {
    const db = await createTestDatabase('runtime_noredis');
    try {
      const result = runFixture({ DATABASE_URL: db.url, REDIS_URL: 'redis://:s3cret-pw@127.0.0.1:1' });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('fixture-service: cannot reach Redis at redis://:***@127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1). Start Redis there, or set REDIS_URL to one that runs.\n');
    } finally {
      await db.drop();
    }
  });
});
