import { authFromConfig } from '@cloudretail/auth';
import { TOPICS } from '@cloudretail/events';
import { createApp, finishApp } from '@cloudretail/http';
import { type ServiceContext, type ServiceDefinition, runMain, startService } from '@cloudretail/runtime';
import { type Config, configSchema } from './config';
import { migrations } from './data-access/migrations';
import { orderStatusRepository } from './data-access/order-status-repository';
import { redisBackbone } from './data-access/redis-backbone';
import { statusChannel } from './data-access/status-channel';
import { streamSlots } from './data-access/stream-slots';
import { backboneUseCases } from './domain/backbone-use-cases';
import { orderStatusUseCases } from './domain/order-status-use-cases';
import { type OpenStreams, openStreams } from './entry-points/api/order-events';
import { eventBusApi } from './entry-points/api/routes';
import { startOrderStatusConsumer } from './entry-points/messaging/order-status-consumer';
import { registerBackboneMetrics } from './entry-points/metrics/backbone-metrics';

/** The open SSE streams of each running instance (keyed by its context), for {@link start}'s stop. */
const streamsOf = new WeakMap<ServiceContext<Config>, OpenStreams>();

export const service: ServiceDefinition<typeof configSchema> = {
  name: 'event-bus',
  schema: configSchema,
  migrations,
  // Live status (pub/sub fan-out, stream slots) and the dead-letter API are Redis / the backbone:
  // without them this service has little it can serve.
  critical: ['redis', 'events'],
  async setup(ctx) {
    const { config, logger, metrics, db, redis, transport, faults } = ctx;
    const groups = [...new Set([...config.CONSUMER_GROUPS, 'event-bus'])];
    const backbone = backboneUseCases({
      transport,
      redis: transport.kind === 'redis' ? redisBackbone(redis, { prefix: config.EVENT_TOPIC_PREFIX }) : undefined,
      topics: TOPICS,
      groups,
    });
    await backbone.provision();

    const channel = statusChannel(redis, logger, { prefix: config.REDIS_KEY_PREFIX });
    const slots = streamSlots(redis, { prefix: config.REDIS_KEY_PREFIX, limit: config.SSE_MAX_STREAMS_PER_USER, leaseMs: Math.max(3 * config.SSE_HEARTBEAT_MS, 10_000) });
    const orderStatus = orderStatusUseCases({ statuses: orderStatusRepository(db), channel });
    const streams = openStreams();
    streamsOf.set(ctx, streams);

    const app = createApp({ logger, metrics, faults });
    const limits = {
      heartbeatMs: config.SSE_HEARTBEAT_MS,
      maxLifetimeMs: config.SSE_MAX_LIFETIME_MS,
      reconnectMs: config.SSE_RECONNECT_MS,
      firstStatusWaitMs: config.SSE_FIRST_STATUS_WAIT_MS,
    };
    eventBusApi({ backbone, orderStatus, auth: authFromConfig(config, { redis, logger }), groups, streams, slots, limits, logger }).mount(app);
    registerBackboneMetrics({ registry: metrics.registry, backbone, sseListeners: () => channel.listenerCount(), logger });
    const consumer = await startOrderStatusConsumer({ transport, db, useCases: orderStatus });

    // An open stream is an in-flight request the drain would wait SHUTDOWN_TIMEOUT_MS for. Once
    // load balancers have stopped sending traffic here (SHUTDOWN_DELAY_MS), end the streams:
    // clients reconnect to another replica with Last-Event-ID.
    const onSignal = () => setTimeout(() => streams.endAll(), config.SHUTDOWN_DELAY_MS).unref();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);

    return {
      app: finishApp(app),
      closers: [
        consumer,
        {
          name: 'sse-streams',
          close: () => {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            streams.endAll();
          },
        },
        { name: 'status-subscriber', close: () => channel.close() },
      ],
    };
  },
};

/** Starts the service (tests pass their own environment and port 0); `stop()` ends open streams first. */
export async function start(env: NodeJS.ProcessEnv = process.env) {
  const running = await startService(service, env);
  return {
    ...running,
    async stop() {
      streamsOf.get(running.ctx)?.endAll();
      await running.stop();
    },
  };
}

if (require.main === module) runMain(service);
