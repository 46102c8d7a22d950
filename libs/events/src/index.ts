export { catalog, describeCatalog, topicOf, TOPICS, type EventType } from './catalog';
export { createEvent, parseEvent, EnvelopeSchema, type EventEnvelope, type EventOf, type PayloadOf } from './envelope';
export { enqueue, onOutboxCommit, outboxMigration } from './outbox';
export { inboxMigration, handleOnce } from './inbox';
export { startOutboxRelay, type OutboxRelay, type OutboxRelayOptions, type RelayRound } from './relay';
export { dlqTopic, type DeadLetter, type EventHandler, type SubscribeOptions, type Subscription, type Transport } from './transport';
export { connectRedis, createRedisTransport, streamKey, type RedisTransportOptions } from './redis-transport';
export { createKafkaTransport, type KafkaTransportOptions } from './kafka-transport';
export { createTransport, eventsConfig, type EventsConfig, type TransportConfig } from './config';
