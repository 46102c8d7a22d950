import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { createLogger } from '@cloudretail/logging';
import { serve } from '../src';

interface Child {
  proc: ChildProcess;
  port: number;
  lines: Record<string, unknown>[];
  exit: Promise<number | null>;
}

function startFixture(env: Record<string, string>): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures/slow-server.ts')], {
    cwd: path.join(__dirname, '../../..'),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let buffer = '';
    proc.stdout!.on('data', (chunk) => {
      buffer += chunk;
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      for (const part of parts) {
        const line = JSON.parse(part);
        lines.push(line);
        if (line.ready) resolve({ proc, port: line.ready, lines, exit });
      }
    });
    exit.then((code) => reject(new Error(`fixture exited early with ${code}`)));
  });
}

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('graceful shutdown of a real process', () => {
  it('when SIGTERM arrives with a slow request in flight, then readiness is 503 at once, new connections are refused after the delay, the request completes and the process exits 0', async () => {
    const child = await startFixture({ DELAY_MS: '300', TIMEOUT_MS: '5000' });
    const inFlight = get(child.port, '/slow?ms=1500');
    await sleep(100);
    const signalledAt = Date.now();
    child.proc.kill('SIGTERM');
    await sleep(50);

    const ready = await get(child.port, '/health/ready');
    expect(ready.status).toBe(503);
    await sleep(400);
    await expect(get(child.port, '/slow?ms=0')).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    await expect(inFlight).resolves.toEqual({ status: 200, body: 'done' });
    expect(await child.exit).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(5000);
    const closed = child.lines.filter((l) => l.msg === 'shutdown: closed').map((l) => l.resource);
    expect(closed).toEqual(['consumers', 'database']);
  });

  it('when an in-flight request outlives the deadline, then its connection is cut and the process exits 1', async () => {
    const child = await startFixture({ DELAY_MS: '0', TIMEOUT_MS: '300' });
    const inFlight = get(child.port, '/slow?ms=10000').catch((e) => e);
    await sleep(100);
    child.proc.kill('SIGTERM');
    expect(await child.exit).toBe(1);
    expect(await inFlight).toMatchObject({ code: 'ECONNRESET' });
  });
});

describe('serve().stop()', () => {
  it('drains, runs the closers in order and leaves no signal listeners behind', async () => {
    const listenersBefore = process.listenerCount('SIGTERM');
    const closed: string[] = [];
    const running = await serve({
      app: (_req, res) => res.end('ok'),
      port: 0,
      host: '127.0.0.1',
      logger: createLogger({ name: 'test', level: 'silent' }),
      closers: [
        { name: 'a', close: () => closed.push('a') },
        { name: 'b', close: () => closed.push('b') },
      ],
    });
    expect(process.listenerCount('SIGTERM')).toBe(listenersBefore + 1);
    expect((await get(running.port, '/health/ready')).status).toBe(200);
    expect((await get(running.port, '/health/live')).status).toBe(200);
    await running.stop();
    expect(closed).toEqual(['a', 'b']);
    expect(process.listenerCount('SIGTERM')).toBe(listenersBefore);
  });

  it('when a closer hangs (a consumer waiting for a Redis that is down), then it is given up after closeTimeoutMs and the ones after it still close', async () => {
    const closed: string[] = [];
    const running = await serve({
      app: (_req, res) => res.end('ok'),
      port: 0,
      host: '127.0.0.1',
      logger: createLogger({ name: 'test', level: 'silent' }),
      closeTimeoutMs: 200,
      closers: [
        { name: 'stuck-consumer', close: () => new Promise(() => undefined) },
        { name: 'postgres', close: () => closed.push('postgres') },
      ],
    });
    const startedAt = Date.now();

    await running.stop();

    expect(Date.now() - startedAt).toBeLessThan(2_000);
    expect(closed).toEqual(['postgres']);
  });
});
