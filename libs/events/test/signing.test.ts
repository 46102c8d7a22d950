import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import Redis from 'ioredis';
import { ConfigError } from '@cloudretail/config';
import { Registry } from '@cloudretail/metrics';
import { TEST_REDIS_URL } from '@cloudretail/testing';
import { type EventEnvelope, type Transport, PRODUCERS, canonicalBytes, createEvent, createEventSigning, createTransport, formatVerifyKeys, generateEventKeySet, streamKey } from '../src';
import { eventually, logger, uniqueName } from './support';

// Real keys, as production has them: one pair per producing service, the public halves in one bundle.
const pairs = Object.fromEntries(Object.values(PRODUCERS).map((service) => [service, generateKeyPairSync('ed25519')]));
const verifyKeys = formatVerifyKeys(Object.fromEntries(Object.entries(pairs).map(([service, pair]) => [service, pair.publicKey])));
const privatePem = (service: string) => pairs[service].privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const envOf = (service: string, prefix: string) => ({
  EVENT_TRANSPORT: 'redis' as const,
  REDIS_URL: TEST_REDIS_URL,
  EVENT_TOPIC_PREFIX: prefix,
  NODE_ENV: 'production',
  EVENT_VERIFY_KEYS: verifyKeys,
  EVENT_SIGNING_KEY: privatePem(service),
});
const captured = () => createEvent('PaymentCaptured', randomUUID(), { paymentId: randomUUID(), orderId: randomUUID(), amountCents: 0, currency: 'USD' });
/** What a compromised service (or anyone holding its key) can write straight to the stream. */
const signedBy = (service: string, event: EventEnvelope, producer = service) => {
  const claimed = { ...event, producer };
  return { ...claimed, signature: sign(null, canonicalBytes(claimed), pairs[service].privateKey).toString('base64') };
};

describe('event authentication with per-service keys', () => {
  const prefix = `${uniqueName('sig')}.`;
  const group = 'order-service';
  const transports: Transport[] = [];
  let redis: Redis;
  let registry: Registry;
  let orderService: Transport;
  let handled: EventEnvelope[];
  beforeAll(async () => {
    redis = new Redis(TEST_REDIS_URL);
    registry = new Registry();
    orderService = createTransport(envOf('order-service', prefix), logger, { registry });
    transports.push(orderService);
    handled = [];
    await orderService.subscribe({ group, topics: ['payments'], handle: async (event) => void handled.push(event) });
  });
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
    const keys = [...(await redis.keys(`events:${prefix}*`)), ...(await redis.keys(`events:dlq.${prefix}*`))];
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });
  const writeRaw = (envelope: unknown) => redis.xadd(streamKey(`${prefix}payments`), '*', 'envelope', JSON.stringify(envelope));
  const deadLetterOf = async (id: string) =>
    eventually(async () => {
      const letter = (await orderService.listDeadLetters(group)).find((l) => (l.envelope as { id?: string }).id === id);
      expect(letter).toBeDefined();
      return letter!;
    });

  it('when payment-service publishes PaymentCaptured with its key, then order-service handles it', async () => {
    const paymentService = createTransport(envOf('payment-service', prefix), logger);
    transports.push(paymentService);
    const event = captured();

    await paymentService.publish('payments', [event]);

    await eventually(() => expect(handled.map((e) => e.id)).toContain(event.id));
    expect(handled.find((e) => e.id === event.id)).toMatchObject({ producer: 'payment-service' });
  });

  it('when a forged PaymentCaptured (amount 0, unsigned) is written straight to the stream, then it is not handled: dead-lettered, logged and counted', async () => {
    const forged = captured();

    await writeRaw(forged);

    const letter = await deadLetterOf(forged.id);
    expect(letter).toMatchObject({ attempts: 0, reason: expect.stringContaining('unauthentic event') });
    expect(handled.map((e) => e.id)).not.toContain(forged.id);
    expect(await registry.getSingleMetricAsString('events_rejected_total')).toMatch(/events_rejected_total\{topic="[^"]*payments",type="PaymentCaptured"\} [1-9]/);
  });

  it('when order-service signs a PaymentCaptured, naming itself or payment-service, then it is rejected either way', async () => {
    const asItself = signedBy('order-service', captured());
    const impersonating = signedBy('order-service', captured(), 'payment-service');

    await writeRaw(asItself);
    await writeRaw(impersonating);

    expect((await deadLetterOf(asItself.id)).reason).toMatch(/PaymentCaptured is produced by payment-service; this one claims order-service/);
    expect((await deadLetterOf(impersonating.id)).reason).toMatch(/signature does not match payment-service's key/);
    expect(handled.map((e) => e.id)).not.toContain(asItself.id);
    expect(handled.map((e) => e.id)).not.toContain(impersonating.id);
  });

  it('when a genuine PaymentCaptured is altered (amount), then it is rejected', async () => {
    const genuine = signedBy('payment-service', { ...captured(), payload: { ...captured().payload, amountCents: 4200 } });
    const altered = { ...genuine, id: randomUUID(), payload: { ...(genuine.payload as object), amountCents: 1 } };

    await writeRaw(altered);

    expect((await deadLetterOf(altered.id)).reason).toMatch(/signature does not match/);
  });

  it('when a service publishes an event type the catalog gives to another producer, then publish refuses', async () => {
    await expect(orderService.publish('payments', [captured()])).rejects.toThrow(/order-service cannot publish PaymentCaptured/);
  });
});

describe('signing configuration', () => {
  const configError = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('no ConfigError');
  };

  it('when NODE_ENV=production has no keys, then createTransport fails naming EVENT_VERIFY_KEYS and EVENT_SIGNING_KEY', () => {
    const message = configError(() => createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, NODE_ENV: 'production' }, logger));

    expect(message).toMatch(/EVENT_VERIFY_KEYS/);
    expect(message).toMatch(/EVENT_SIGNING_KEY/);
  });

  it('when the signing key is not in the bundle, a bundle entry is bad, or a producer is missing, then a config error names the variable', () => {
    const stranger = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');

    expect(configError(() => createEventSigning({ verifyKeys, signingKey: stranger, production: true }))).toMatch(/EVENT_SIGNING_KEY.*not in EVENT_VERIFY_KEYS/);
    expect(configError(() => createEventSigning({ verifyKeys: `${verifyKeys},broken=abc`, production: true }))).toMatch(/EVENT_VERIFY_KEYS/);
    expect(configError(() => createEventSigning({ verifyKeys: verifyKeys.split(',').slice(1).join(','), production: true }))).toMatch(/EVENT_VERIFY_KEYS.*has no key for product-service/);
  });

  it('when no keys are configured outside production, then development keys derived from the seed sign and verify, and another seed does not verify them', () => {
    const event = captured();
    const signed = createEventSigning().sign(event) as unknown as Record<string, unknown>;

    expect(() => createEventSigning().verify(signed)).not.toThrow();
    expect(() => createEventSigning({ devSeed: 'another-platform' }).verify(signed)).toThrow(/signature does not match/);
  });

  it('when a key set is generated for a platform, then each service signs as itself with its key and the others verify it', () => {
    const { verifyKeys: bundle, signingKeys } = generateEventKeySet(['event-bus']);
    const paymentService = createEventSigning({ verifyKeys: bundle, signingKey: signingKeys['payment-service'], production: true });
    const eventBus = createEventSigning({ verifyKeys: bundle, signingKey: signingKeys['event-bus'], production: true });

    const signed = paymentService.sign(captured()) as unknown as Record<string, unknown>;

    expect(signed.producer).toBe('payment-service');
    expect(() => eventBus.verify(signed)).not.toThrow();
    expect(() => eventBus.sign(captured())).toThrow(/event-bus cannot publish PaymentCaptured/);
  });
});
