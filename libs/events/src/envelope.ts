import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { currentRequestId } from '@cloudretail/logging';
import { type EventType, catalog } from './catalog';

export const EnvelopeSchema = z.object({
  id: z.uuid(),
  type: z.string().min(1),
  version: z.number().int().positive(),
  aggregateId: z.string().min(1),
  occurredAt: z.iso.datetime(),
  correlationId: z.string().optional(),
  payload: z.unknown(),
  producer: z.string().optional(),
  signature: z.string().optional(),
});

/** Every event on the backbone: who it is about (`aggregateId`, also the partition key) and what happened. */
export interface EventEnvelope<P = unknown> {
  id: string;
  type: string;
  version: number;
  aggregateId: string;
  occurredAt: string;
  /** The request id of the HTTP request that started the flow. */
  correlationId?: string;
  payload: P;
  /** The service that signed it; consumers accept it only from the catalog's producer of `type` (signing.ts). */
  producer?: string;
  /** Ed25519 signature (base64) of the canonical envelope without this field; added when published. */
  signature?: string;
}

export type PayloadOf<T extends EventType> = z.output<(typeof catalog)[T]['schema']>;
export type EventOf<T extends EventType> = EventEnvelope<PayloadOf<T>> & { type: T };

/** Builds an envelope, validating the payload against the catalog (throws on a bad payload). */
export function createEvent<T extends EventType>(type: T, aggregateId: string, payload: PayloadOf<T>, correlationId = currentRequestId()): EventOf<T> {
  const entry = catalog[type];
  return {
    id: randomUUID(),
    type,
    version: entry.version,
    aggregateId,
    occurredAt: new Date().toISOString(),
    ...(correlationId ? { correlationId } : {}),
    payload: entry.schema.parse(payload) as PayloadOf<T>,
  };
}

/** Validates an incoming envelope and its payload; throws a ZodError or an Error naming an unknown type. */
export function parseEvent(raw: unknown): EventEnvelope {
  const envelope = EnvelopeSchema.parse(raw) as EventEnvelope;
  const entry = (catalog as Record<string, { version: number; schema: z.ZodType }>)[envelope.type];
  if (!entry) throw new Error(`unknown event type ${envelope.type}`);
  if (entry.version !== envelope.version) throw new Error(`unsupported version ${envelope.version} of ${envelope.type}`);
  return { ...envelope, payload: entry.schema.parse(envelope.payload) };
}
