import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { dlqTopic, streamKey } from '@cloudretail/events';

export interface GroupLag {
  group: string;
  topic: string;
  /** Entries not yet delivered to the group. */
  lag: number;
  /** Entries delivered to a consumer of the group but not yet acknowledged. */
  pending: number;
}

/** Entries counted at most when Redis cannot say the lag itself (see below). */
const LAG_COUNT_CAP = 10_000;

const asRecord = (flat: unknown[]): Record<string, unknown> => {
  const record: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[String(flat[i])] = flat[i + 1];
  return record;
};

/**
 * What the event-bus reads and creates on the Redis Streams backbone directly, beside the
 * transport: the transport creates streams lazily and has no notion of lag. `prefix` is
 * EVENT_TOPIC_PREFIX: names in and out are unprefixed, as services see them.
 */
export function redisBackbone(redis: Redis, { prefix = '' }: { prefix?: string } = {}) {
  const key = (topic: string) => streamKey(`${prefix}${topic}`);
  const unprefixed = (name: string) => (prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name);

  async function groupsOf(topic: string): Promise<Record<string, unknown>[]> {
    try {
      return ((await redis.xinfo('GROUPS', key(topic))) as unknown[][]).map(asRecord);
    } catch (error) {
      if (error instanceof Error && error.message.includes('no such key')) return [];
      throw error;
    }
  }

  return {
    /** Creates each topic's stream (empty, no group) when missing; a no-op for existing ones. */
    async ensureStreams(topics: string[]): Promise<void> {
      for (const topic of topics) {
        // Redis creates an empty stream only together with a group: create a throwaway one and drop it.
        const scratch = `provision-${randomUUID()}`;
        const results = await redis.multi().xgroup('CREATE', key(topic), scratch, '$', 'MKSTREAM').xgroup('DESTROY', key(topic), scratch).exec();
        const failed = results?.find(([error]) => error);
        if (failed) throw failed[0];
      }
    },

    async streamExists(topic: string): Promise<boolean> {
      return (await redis.type(key(topic))) === 'stream';
    },

    /** Lag and pending count of every consumer group on these topics' streams. */
    async consumerLag(topics: string[]): Promise<GroupLag[]> {
      const result: GroupLag[] = [];
      for (const topic of topics) {
        for (const info of await groupsOf(topic)) {
          let lag = info['lag'];
          if (typeof lag !== 'number') {
            // Redis 7 reports no lag after entries were deleted from the middle of the stream
            // (and Redis 6 never does): count what follows the last delivered entry, capped.
            const entries = await redis.xrange(key(topic), `(${String(info['last-delivered-id'])}`, '+', 'COUNT', LAG_COUNT_CAP);
            lag = entries.length;
          }
          result.push({ group: unprefixed(String(info['name'])), topic, lag: lag as number, pending: Number(info['pending'] ?? 0) });
        }
      }
      return result;
    },

    /** Dead letters waiting per group (the length of each `dlq.<group>` stream; the prefix is on the group). */
    async deadLetterCounts(groups: string[]): Promise<{ group: string; count: number }[]> {
      const results = (await groups.reduce((pipeline, group) => pipeline.xlen(streamKey(dlqTopic(`${prefix}${group}`))), redis.pipeline()).exec()) ?? [];
      return groups.map((group, i) => {
        const [error, count] = results[i] ?? [];
        if (error) throw error;
        return { group, count: Number(count ?? 0) };
      });
    },
  };
}

export type RedisBackbone = ReturnType<typeof redisBackbone>;
