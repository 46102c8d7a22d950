import { notFound } from '@cloudretail/errors';
import { type DeadLetter, type Transport, describeCatalog } from '@cloudretail/events';
import type { GroupLag, RedisBackbone } from '../data-access/redis-backbone';

export interface Page {
  page: number;
  limit: number;
}

/**
 * Backbone operations: provisioning, the event catalog, dead letters, and the numbers behind the
 * lag metrics. `redis` is set when the transport is Redis Streams; with Kafka, topic creation is
 * the transport's and lag is left to a Kafka exporter.
 */
export function backboneUseCases({ transport, redis, topics, groups }: { transport: Transport; redis?: RedisBackbone; topics: string[]; groups: string[] }) {
  return {
    /** Every topic exists before a producer or consumer needs it. */
    async provision(): Promise<void> {
      await transport.provision(topics);
      await redis?.ensureStreams(topics);
    },

    catalog: () => describeCatalog(),

    async listDeadLetters(group: string, { page, limit }: Page): Promise<{ items: DeadLetter[]; page: number; limit: number; total: number }> {
      const letters = await transport.listDeadLetters(group);
      // The transport reports its own (possibly prefixed) group name; callers asked for this one.
      const items = letters.slice((page - 1) * limit, page * limit).map((letter) => ({ ...letter, group }));
      return { items, page, limit, total: letters.length };
    },

    async replayDeadLetter(group: string, id: string): Promise<void> {
      if (!(await transport.replayDeadLetter(group, id))) throw notFound('Dead letter');
    },

    consumerLag: async (): Promise<GroupLag[]> => (redis ? redis.consumerLag(topics) : []),
    deadLetterCounts: async () => (redis ? redis.deadLetterCounts(groups) : []),
  };
}

export type BackboneUseCases = ReturnType<typeof backboneUseCases>;
