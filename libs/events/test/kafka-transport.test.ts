import { Kafka, Partitioners, type Producer, logLevel } from 'kafkajs';
import { createKafkaTransport } from '../src';
import { type KafkaMock, startKafkaMock } from './kafka-mock';
import { devSigning, logger } from './support';
import { transportContract } from './transport-contract';

// Every consumer group join on the mock cluster takes about three seconds.
jest.setTimeout(60_000);

let mock: KafkaMock;
let raw: Producer;
beforeAll(async () => {
  mock = await startKafkaMock();
  raw = new Kafka({ clientId: 'raw', brokers: mock.brokers, logLevel: logLevel.NOTHING }).producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await raw.connect();
});
afterAll(async () => {
  await raw?.disconnect();
  await mock?.stop();
});

describe('kafka transport contract (librdkafka mock cluster)', () => {
  transportContract(() => ({
    // The mock has no controller (no createTopics) and no idempotent producer: it auto-creates topics.
    create: () => createKafkaTransport({ brokers: mock.brokers, clientId: 'events-test', logger, idempotent: false, createTopics: false, sessionTimeoutMs: 6_000, signing: devSigning }),
    publishRaw: async (topic, key, value, type) => {
      await raw.send({ topic, messages: [{ key, value, ...(type ? { headers: { type } } : {}) }] });
    },
    cleanup: async () => undefined, // topics vanish with the mock cluster
  }));
});
