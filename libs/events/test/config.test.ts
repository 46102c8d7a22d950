import { ConfigError, loadConfig, z } from '@cloudretail/config';
import { createTransport, eventsConfig } from '../src';
import { logger } from './support';

const schema = z.object(eventsConfig);

describe('events config', () => {
  it('when nothing is set, then the defaults select Redis, five minutes of retries with no attempt cap, and 24 h of outbox retention', () => {
    const config = loadConfig(schema, {});

    expect(config).toMatchObject({ EVENT_TRANSPORT: 'redis', EVENT_RETRY_FOR_MS: 300_000, EVENT_RETRY_MAX_BACKOFF_MS: 30_000, KAFKA_IDEMPOTENT: true, OUTBOX_POLL_MS: 500, OUTBOX_RETENTION_HOURS: 24 });
    expect(config.EVENT_MAX_ATTEMPTS).toBeUndefined();
  });

  it('when kafka is chosen, then KAFKA_BROKERS is split into a list', () => {
    const config = loadConfig(schema, { EVENT_TRANSPORT: 'kafka', KAFKA_BROKERS: 'kafka-0:9092, kafka-1:9092', KAFKA_IDEMPOTENT: 'false' });

    expect(config).toMatchObject({ KAFKA_BROKERS: ['kafka-0:9092', 'kafka-1:9092'], KAFKA_IDEMPOTENT: false });
  });

  it('when kafka is chosen without brokers, then createTransport fails naming KAFKA_BROKERS', () => {
    const config = loadConfig(schema, { EVENT_TRANSPORT: 'kafka' });

    expect(() => createTransport(config, logger)).toThrow(ConfigError);
    expect(() => createTransport(config, logger)).toThrow(/KAFKA_BROKERS: is required when EVENT_TRANSPORT=kafka/);
  });

  it('when the transport name is unknown, then loading fails naming EVENT_TRANSPORT', () => {
    expect(() => loadConfig(schema, { EVENT_TRANSPORT: 'rabbitmq' })).toThrow(/EVENT_TRANSPORT/);
  });
});
