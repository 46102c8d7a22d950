import { ZodError } from 'zod';
import { runWithContext } from '@cloudretail/logging';
import { TOPICS, createEvent, describeCatalog, parseEvent } from '../src';

const productId = '3f1f1a2e-7a57-4a8c-8f55-8a1f2b3c4d5e';

describe('event catalog', () => {
  it('builds a versioned envelope whose correlation id is the current request id', () => {
    const event = runWithContext({ requestId: 'req-42' }, () => createEvent('ProductDeleted', productId, { productId }));
    expect(event).toMatchObject({ type: 'ProductDeleted', version: 1, aggregateId: productId, correlationId: 'req-42', payload: { productId } });
    expect(parseEvent(JSON.parse(JSON.stringify(event)))).toEqual(event);
  });

  it('rejects a payload that does not match its schema, on publish and on consume', () => {
    expect(() => createEvent('ProductDeleted', productId, { productId: 'nope' })).toThrow(ZodError);
    const event = createEvent('ProductDeleted', productId, { productId });
    expect(() => parseEvent({ ...event, payload: {} })).toThrow(ZodError);
    expect(() => parseEvent({ ...event, type: 'Nope' })).toThrow(/unknown event type Nope/);
    expect(() => parseEvent({ ...event, version: 2 })).toThrow(/unsupported version 2/);
  });

  it('describes every event with its topic and JSON Schema', () => {
    const rows = describeCatalog();
    expect(rows.find((r) => r.type === 'OrderPlaced')).toMatchObject({ version: 1, topic: 'orders', schema: { type: 'object' } });
    expect(TOPICS).toEqual(expect.arrayContaining(['catalog', 'inventory', 'orders', 'payments']));
  });
});
