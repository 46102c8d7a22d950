import { execFileSync } from 'node:child_process';
import express from 'express';
import request from 'supertest';
import { createMetrics, labelRoute } from '../src';

describe('metrics', () => {
  it('serves Prometheus text that `promtool check metrics` accepts, with default process metrics', async () => {
    const metrics = createMetrics({ service: 'lint-me' });
    const app = express();
    app.use(metrics.httpMiddleware);
    app.get('/metrics', metrics.handler);
    app.get('/products/:id', (_req, res) => res.json({}));
    app.use('/api/products', labelRoute('/api/products'), (_req, res) => res.status(502).end());
    await request(app).get('/products/42');
    await request(app).get('/api/products/42/anything');

    const res = await request(app).get('/metrics');
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    expect(res.text).toMatch(/process_cpu_user_seconds_total/);
    expect(res.text).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/products\/:id",status="200"[^}]*\}/);
    expect(res.text).toMatch(/http_requests_total\{method="GET",route="\/api\/products",status="502",service="lint-me"\} 1/);

    // promtool must be installed (Debian package `prometheus`); a missing tool fails the test.
    const out = execFileSync('promtool', ['check', 'metrics'], { input: res.text, encoding: 'utf8' });
    expect(out).toBe('');
  });
});
