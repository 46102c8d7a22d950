import { HealthCheckError } from '@godaddy/terminus';
import Redis from 'ioredis';
import { probes, redisCheck, runChecks } from '../src';

describe('runChecks', () => {
  it('when every check passes, then each is reported up', async () => {
    const result = await runChecks([{ name: 'a', check: async () => 1 }], 100);
    expect(result.a.status).toBe('up');
  });

  it('when one check hangs, then it is timed out and named, and the others still report', async () => {
    const hang = { name: 'postgres', check: () => new Promise(() => undefined) };
    const ok = { name: 'redis', check: async () => 'PONG' };
    const error = await runChecks([hang, ok], 50).catch((e) => e);
    expect(error).toBeInstanceOf(HealthCheckError);
    expect(error.causes).toMatchObject({ postgres: { status: 'down', error: 'timed out after 50 ms' }, redis: { status: 'up' } });
  });

  it('when an optional check fails, then it is reported down but readiness still passes', async () => {
    const degraded = { name: 'rate-limiter-redis', optional: true, check: async () => Promise.reject(new Error('connection refused')) };
    const result = await runChecks([degraded, { name: 'a', check: async () => 1 }], 100);
    expect(result).toMatchObject({ 'rate-limiter-redis': { status: 'down', error: 'connection refused', optional: true }, a: { status: 'up' } });
  });

  it('runs a real Redis PING, and reports a Redis that does not answer as down', async () => {
    const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
    await expect(runChecks([redisCheck(redis)], 1000)).resolves.toMatchObject({ redis: { status: 'up' } });
    redis.disconnect();
    const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    dead.on('error', () => undefined);
    const error = await runChecks([redisCheck(dead)], 500).catch((e) => e);
    expect(error.causes.redis.status).toBe('down');
    dead.disconnect();
  });
});

describe('probes', () => {
  it('when shutting down, then readiness fails at once and liveness still passes', async () => {
    const handlers = probes({ checks: [], isStarted: () => true, isShuttingDown: () => true });
    const ready = handlers['/health/ready'] as () => Promise<unknown>;
    const live = handlers['/health/live'] as () => Promise<unknown>;
    await expect(ready()).rejects.toBeInstanceOf(HealthCheckError);
    await expect(live()).resolves.toEqual({ status: 'up' });
  });

  it('when start-up is not done, then startup and readiness fail', async () => {
    const handlers = probes({ checks: [], isStarted: () => false, isShuttingDown: () => false });
    await expect((handlers['/health/startup'] as () => Promise<unknown>)()).rejects.toBeInstanceOf(HealthCheckError);
    await expect((handlers['/health/ready'] as () => Promise<unknown>)()).rejects.toBeInstanceOf(HealthCheckError);
  });
});
