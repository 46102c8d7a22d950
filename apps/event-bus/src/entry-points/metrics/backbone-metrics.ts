import type { Logger } from '@cloudretail/logging';
import { Gauge, type Registry } from '@cloudretail/metrics';
import type { BackboneUseCases } from '../../domain/backbone-use-cases';

/**
 * Backbone gauges, computed when Prometheus scrapes (a `collect` callback), so they cost nothing
 * between scrapes. A failed read leaves the series out of that scrape rather than failing /metrics.
 */
export function registerBackboneMetrics({ registry, backbone, sseListeners, logger }: { registry: Registry; backbone: BackboneUseCases; sseListeners: () => number; logger: Logger }) {
  const refill = async (gauge: Gauge, read: () => Promise<void>) => {
    gauge.reset();
    await read().catch((error) => logger.warn({ err: error, metric: (gauge as unknown as { name: string }).name }, 'backbone metric unavailable'));
  };

  new Gauge({
    name: 'event_consumer_lag',
    help: 'Messages on a topic not yet delivered to a consumer group (Redis Streams only)',
    labelNames: ['group', 'topic'] as const,
    registers: [registry],
    async collect() {
      await refill(this, async () => {
        for (const { group, topic, lag } of await backbone.consumerLag()) this.set({ group, topic }, lag);
      });
    },
  });
  new Gauge({
    name: 'event_consumer_pending',
    help: 'Messages delivered to a consumer of a group but not yet acknowledged (Redis Streams only)',
    labelNames: ['group', 'topic'] as const,
    registers: [registry],
    async collect() {
      await refill(this, async () => {
        for (const { group, topic, pending } of await backbone.consumerLag()) this.set({ group, topic }, pending);
      });
    },
  });
  new Gauge({
    name: 'event_dead_letters',
    help: 'Dead letters waiting in dlq.<group> for an admin to replay (Redis Streams only)',
    labelNames: ['group'] as const,
    registers: [registry],
    async collect() {
      await refill(this, async () => {
        for (const { group, count } of await backbone.deadLetterCounts()) this.set({ group }, count);
      });
    },
  });
  new Gauge({
    name: 'event_sse_streams',
    help: 'Order-status Server-Sent Event streams listening for changes on this replica',
    registers: [registry],
    collect() {
      this.set(sseListeners());
    },
  });
}
