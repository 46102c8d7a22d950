import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createLogger } from '@cloudretail/logging';
import { createApp, finishApp, shedLoad } from '../src';
import { eventually } from '@cloudretail/testing';

/** A route whose requests wait until the test releases them, behind shedLoad({ concurrency: 2, queue: 1 }). */
async function startApp() {
  const started: string[] = [];
  const gates = new Map<string, () => void>();
  const app = createApp({ logger: createLogger({ name: 'test', level: 'silent' }) });
  app.get('/work/:name', shedLoad({ concurrency: 2, queue: 1, retryAfterSeconds: 3 }), async (req, res) => {
    const name = String(req.params.name);
    started.push(name);
    await new Promise<void>((resolve) => gates.set(name, resolve));
    res.json({ name });
  });
  finishApp(app);
  const server: Server = await new Promise((listening) => {
    const s = app.listen(0, '127.0.0.1', () => listening(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const release = (name: string) => eventually(() => expect(gates.has(name)).toBe(true)).then(() => gates.get(name)!());
  return { base, started, release, close: () => new Promise((closed) => server.close(closed)) };
}

describe('shedLoad', () => {
  it('when more requests come than run and wait, then the extra one is 503 at once with retry-after, and the waiting one runs when a slot frees', async () => {
    const { base, started, release, close } = await startApp();
    try {
      const a = fetch(`${base}/work/a`);
      const b = fetch(`${base}/work/b`);
      await eventually(() => expect(started).toEqual(['a', 'b']));
      const c = fetch(`${base}/work/c`); // waits
      await new Promise((r) => setTimeout(r, 100));

      const shed = await fetch(`${base}/work/d`);
      expect(shed.status).toBe(503);
      expect(shed.headers.get('retry-after')).toBe('3');
      expect(await shed.json()).toEqual({ error: { code: 'service_unavailable', message: expect.any(String) } });
      expect(started).toEqual(['a', 'b']); // c is still waiting, d never ran

      await release('a');
      expect((await a).status).toBe(200);
      await eventually(() => expect(started).toEqual(['a', 'b', 'c']));
      await release('b');
      await release('c');
      expect(await Promise.all([b, c].map(async (r) => (await r).status))).toEqual([200, 200]);
    } finally {
      await close();
    }
  });

  it('when a waiting client goes away, then it leaves the queue and its turn is not lost', async () => {
    const { base, started, release, close } = await startApp();
    try {
      const a = fetch(`${base}/work/a`);
      const b = fetch(`${base}/work/b`);
      await eventually(() => expect(started).toEqual(['a', 'b']));
      const abort = new AbortController();
      const gone = fetch(`${base}/work/gone`, { signal: abort.signal }).catch(() => 'aborted');
      await new Promise((r) => setTimeout(r, 100));
      abort.abort();
      expect(await gone).toBe('aborted');
      await new Promise((r) => setTimeout(r, 100)); // the server has seen the connection close

      const c = fetch(`${base}/work/c`); // takes the queue place "gone" left
      await new Promise((r) => setTimeout(r, 100));
      await release('a');
      await eventually(() => expect(started).toEqual(['a', 'b', 'c'])); // "gone" never ran
      await release('b');
      await release('c');
      expect(await Promise.all([a, b, c].map(async (r) => (await r).status))).toEqual([200, 200, 200]);
    } finally {
      await close();
    }
  });
});
