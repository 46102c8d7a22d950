import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runWithContext } from '@cloudretail/logging';
import { serviceClient } from '../src';

let server: http.Server;
let base: string;
const seenRequestIds: (string | undefined)[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seenRequestIds.push(req.headers['x-request-id'] as string | undefined);
    if (req.url === '/ok') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"a":1}');
    if (req.url === '/missing') return void res.writeHead(404).end();
    if (req.url === '/broken') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"a":');
    if (req.url === '/slow') return void setTimeout(() => res.end('{}'), 500);
    res.writeHead(500).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe('serviceClient', () => {
  it('resolves the JSON of a 200 and null for a 404, forwarding the request id', async () => {
    const client = serviceClient({ name: 'The stub', baseUrl: `${base}/`, timeoutMs: 1000 });
    await expect(runWithContext({ requestId: 'req-7' }, () => client.get('/ok'))).resolves.toEqual({ a: 1 });
    await expect(client.get('/missing')).resolves.toBeNull();
    expect(seenRequestIds[0]).toBe('req-7');
  });

  it.each([
    ['a 500', '/error', 1000],
    ['a malformed body', '/broken', 1000],
    ['a timeout', '/slow', 50],
  ])('when the service answers with %s, then a 503 service_unavailable naming it', async (_case, path, timeoutMs) => {
    const client = serviceClient({ name: 'The stub', baseUrl: base, timeoutMs });
    await expect(client.get(path)).rejects.toMatchObject({ code: 'service_unavailable', status: 503, message: 'The stub is unavailable; try again shortly' });
  });

  it('when nothing listens, then a 503, not a 500', async () => {
    const client = serviceClient({ name: 'The stub', baseUrl: 'http://127.0.0.1:1', timeoutMs: 1000 });
    await expect(client.get('/ok')).rejects.toMatchObject({ code: 'service_unavailable' });
  });
});
