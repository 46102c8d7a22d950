export { catalog, describeCatalog, topicOf, TOPICS, type EventType } from './catalog';
export { createEvent, parseEvent, EnvelopeSchema, type EventEnvelope, type EventOf, type PayloadOf } from './envelope';
export { enqueue, outboxMigration } from './outbox';
