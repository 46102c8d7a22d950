import { Writable } from 'node:stream';
import { createLogger, currentRequestId, redactUrl, runWithContext } from '../src';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      raw.push(chunk.toString());
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { lines, raw, destination };
}

describe('createLogger', () => {
  it('when logging inside a request context, then every line carries the request id, across awaits', async () => {
    const { lines, destination } = capture();
    const logger = createLogger({ name: 'svc', destination });
    await runWithContext({ requestId: 'req-1' }, async () => {
      logger.info('before');
      await new Promise((r) => setTimeout(r, 5));
      logger.info({ orderId: 'o1' }, 'after');
      expect(currentRequestId()).toBe('req-1');
    });
    logger.info('outside');
    expect(lines.map((l) => l.requestId)).toEqual(['req-1', 'req-1', undefined]);
    expect(lines[0]).toMatchObject({ service: 'svc', level: 'info', msg: 'before' });
  });

  it('when a line names its own request id, then that one is written, once, whatever the context', async () => {
    const { lines, raw, destination } = capture();
    const logger = createLogger({ name: 'svc', destination });
    await runWithContext({ requestId: 'req-context' }, async () => logger.warn({ requestId: 'req-explicit' }, 'named'));
    logger.warn({ requestId: 'req-outside' }, 'named outside');
    expect(lines.map((l) => l.requestId)).toEqual(['req-explicit', 'req-outside']);
    expect(raw[0].match(/"requestId"/g)).toHaveLength(1);
  });

  it('redacts passwords and tokens', () => {
    const { lines, destination } = capture();
    createLogger({ name: 'svc', destination }).info({ body: { password: 'hunter22' }, token: 'abc' }, 'login');
    expect(JSON.stringify(lines[0])).not.toMatch(/hunter22|abc/);
  });
});

describe('redactUrl', () => {
  it('hides the password of a connection URL and keeps the rest', () => {
    expect(redactUrl('postgres://app:s3cret@db.internal:5432/orders')).toBe('postgres://app:***@db.internal:5432/orders');
    expect(redactUrl('redis://:s3cret@127.0.0.1:6379')).toBe('redis://:***@127.0.0.1:6379');
    expect(redactUrl('postgres://postgres@127.0.0.1:5432/x')).toBe('postgres://postgres@127.0.0.1:5432/x');
    expect(redactUrl('not a url with s3cret')).toBe('(unparseable URL)');
  });
});
