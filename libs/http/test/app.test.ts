import request from 'supertest';
import { Writable } from 'node:stream';
import { z } from 'zod';
import { AppError } from '@cloudretail/errors';
import { createLogger } from '@cloudretail/logging';
import { createMetrics } from '@cloudretail/metrics';
import { createApp, finishApp, parseRequest } from '../src';

function buildApp({ logContext = true } = {}) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({ write: (c, _e, done) => (lines.push(JSON.parse(c.toString())), done()) });
  const logger = createLogger({ name: 'test', destination });
  const metrics = createMetrics({ service: 'test', defaultMetrics: false });
  const app = createApp({ logger, metrics, logContext });
  app.post('/echo', (req, res) => {
    const { body, query } = parseRequest(req, {
      body: z.object({ name: z.string().min(1), quantity: z.number().int().positive() }),
      query: z.object({ dryRun: z.enum(['true', 'false']).optional() }),
    });
    res.json({ body, query });
  });
  app.get('/items/:id', (req, res) => res.json({ id: req.params.id }));
  app.get('/boom', () => {
    throw new Error('database password is hunter2');
  });
  app.get('/conflict', async () => {
    throw new AppError('conflict', 'Already exists');
  });
  finishApp(app);
  return { app, lines, metrics };
}

describe('createApp + finishApp', () => {
  it('when the client sends x-request-id, then it is echoed; otherwise one is generated', async () => {
    const { app } = buildApp();
    const echoed = await request(app).get('/items/1').set('x-request-id', 'abc-123');
    expect(echoed.headers['x-request-id']).toBe('abc-123');
    const generated = await request(app).get('/items/1');
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('when a query or body string holds a NUL character, then 400 validation_failed naming it (Postgres cannot take it: it would be a 500)', async () => {
    const { app } = buildApp();
    const res = await request(app).post('/echo?dryRun=true').send({ name: 'a\u0000b', quantity: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'validation_failed', details: [{ location: 'body', path: 'name', message: 'must not contain the NUL character' }] });
    const inQuery = await request(app).post('/echo?dryRun=tr%00ue').send({ name: 'a', quantity: 1 });
    expect(inQuery.status).toBe(400);
  });

  it('when the body has several bad fields, then 400 lists every one', async () => {
    const { app } = buildApp();
    const res = await request(app).post('/echo?dryRun=maybe').send({ quantity: -1 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { location: string; path: string }) => `${d.location}:${d.path}`).sort()).toEqual([
      'body:name',
      'body:quantity',
      'query:dryRun',
    ]);
  });

  it('when the JSON is malformed, then 400 malformed_json in the envelope', async () => {
    const { app } = buildApp();
    const res = await request(app).post('/echo').set('content-type', 'application/json').send('{"name": ');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'malformed_json', message: 'Request body is not valid JSON' } });
  });

  it('when the body exceeds 1 MiB, then 413', async () => {
    const { app } = buildApp();
    const res = await request(app)
      .post('/echo')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10), quantity: 1 }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('when a route throws, then 500 without the message or a stack, and the error is logged with the request id', async () => {
    const { app, lines } = buildApp();
    const res = await request(app).get('/boom').set('x-request-id', 'req-boom');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'internal_error', message: 'Internal server error' } });
    expect(res.text).not.toMatch(/hunter2|at /);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({ requestId: 'req-boom', status: 500 });
  });

  it('when the app keeps no log context (logContext: false), then a request still gets its id and its error line names it', async () => {
    const { app, lines } = buildApp({ logContext: false });
    const res = await request(app).get('/boom').set('x-request-id', 'req-plain');
    expect(res.status).toBe(500);
    expect(res.headers['x-request-id']).toBe('req-plain');
    expect(lines.find((l) => l.level === 'error')).toMatchObject({ requestId: 'req-plain', status: 500 });
    expect((await request(app).get('/items/1')).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('when an async route rejects with an AppError, then its status and code are used', async () => {
    const res = await request(buildApp().app).get('/conflict');
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
  });

  it('when no route matches, then 404 in the envelope', async () => {
    const res = await request(buildApp().app).get('/nope');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('sets security headers and hides x-powered-by', async () => {
    const res = await request(buildApp().app).get('/items/1');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('records metrics by route template, never by raw path', async () => {
    const { app, metrics } = buildApp();
    await request(app).get('/items/1');
    await request(app).get('/items/2');
    await request(app).get('/random/path/123');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/items\/:id",status="200",service="test"\} 2/);
    expect(text).toMatch(/route="unmatched",status="404"/);
    expect(text).not.toMatch(/\/items\/1|random/);
  });
});

describe('rate-limited errors', () => {
  it('when an AppError rate_limited carries retryAfterSeconds, then the response has retry-after', async () => {
    const a = createApp({ logger: createLogger({ name: 't', level: 'silent' }) });
    a.get('/limited', () => {
      throw new AppError('rate_limited', 'Slow down', { retryAfterSeconds: 12.2 });
    });
    const res = await request(finishApp(a)).get('/limited');
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('13');
    expect(res.body.error.code).toBe('rate_limited');
  });
});

describe('fault injection (deployment drills)', () => {
  it('when FAULT_ERROR_RATE is 1, then every request is a 500 in the envelope and is counted in the metrics', async () => {
    const metrics = createMetrics({ service: 'faulty', defaultMetrics: false });
    const a = createApp({ logger: createLogger({ name: 't', level: 'silent' }), metrics, faults: { errorRate: 1, delayMs: 0 } });
    a.get('/ok', (_req, res) => res.json({ ok: true }));
    const res = await request(finishApp(a)).get('/ok');
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('internal_error');
    expect(await metrics.registry.metrics()).toMatch(/http_requests_total\{[^}]*status="500"[^}]*\} 1/);
  });

  it('when faults are off, then nothing is injected', async () => {
    const a = createApp({ logger: createLogger({ name: 't', level: 'silent' }), faults: { errorRate: 0, delayMs: 0 } });
    a.get('/ok', (_req, res) => res.json({ ok: true }));
    expect((await request(finishApp(a)).get('/ok')).status).toBe(200);
  });
});

describe('JSON nesting depth', () => {
  const nested = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

  it('when a body nests 10,000 deep, then 400 validation_failed in the envelope, not a stack overflow', async () => {
    const { app } = buildApp();
    const res = await request(app).post('/echo').set('content-type', 'application/json').send(nested(10_000));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'validation_failed', details: [{ location: 'body', path: '', message: expect.stringContaining('64 levels') }] });
  });

  it('when a body nests exactly 64 deep, then it is parsed and validated as usual', async () => {
    const { app } = buildApp();
    const res = await request(app).post('/echo').set('content-type', 'application/json').send(nested(64));
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['name', 'quantity']);
  });
});
