import { boolean, jwtVerifierConfig, list, milliseconds, port, positiveInt, serviceBase, url, z } from '@cloudretail/config';
import { GROUPS, type Group } from './routes';

/** `<requests>/<window>`, e.g. `300/60s`, `20/1m`, `5/500ms`. */
export interface RateRule {
  limit: number;
  windowMs: number;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

const rateRule = () =>
  z.string().transform((value, ctx): RateRule => {
    const match = /^(\d+)\/(\d+)(ms|s|m|h)$/.exec(value.trim());
    const limit = Number(match?.[1]);
    const windowMs = Number(match?.[2]) * UNIT_MS[(match?.[3] ?? 's') as keyof typeof UNIT_MS];
    if (!match || limit < 1 || windowMs < 1) {
      ctx.addIssue({ code: 'custom', message: 'must look like <requests>/<window>, e.g. 300/60s, 20/1m or 5/500ms' });
      return z.NEVER;
    }
    return { limit, windowMs };
  });

const upstream = (port: number) => url().default(`http://127.0.0.1:${port}`);
const upper = (group: Group) => group.toUpperCase();

// One optional override per route group, so `RATE_LIMIT_ORDERS=50/60s` or `TIMEOUT_PAYMENTS_MS=15000`
// tunes one group and the rest keep the default.
const perGroupRateLimits = Object.fromEntries(
  GROUPS.map((g) => [`RATE_LIMIT_${upper(g)}`, rateRule().optional().describe(`Rate limit of /api/${g} per user or IP (default RATE_LIMIT_DEFAULT)`)]),
) as Record<`RATE_LIMIT_${Uppercase<Group>}`, z.ZodOptional<ReturnType<typeof rateRule>>>;
const perGroupTimeouts = Object.fromEntries(
  GROUPS.map((g) => [`TIMEOUT_${upper(g)}_MS`, z.coerce.number().int().min(0).optional().describe(`Upstream timeout of /api/${g} (default TIMEOUT_DEFAULT_MS)`)]),
) as Record<`TIMEOUT_${Uppercase<Group>}_MS`, z.ZodOptional<z.ZodCoercedNumber>>;

export const configSchema = z.object({
  ...serviceBase,
  PORT: port(8080).describe('HTTP port'),
  ADMIN_PORT: port(0).describe('Port of /health/* and /metrics (Kubernetes: 9080); when set they answer 404 on PORT, which is public. 0: both on PORT'),
  ...jwtVerifierConfig,
  REDIS_URL: url().default('redis://127.0.0.1:6379').describe('Redis shared by every gateway replica for rate limiting'),
  USER_SERVICE_URL: upstream(3001).describe('user-service base URL (/api/auth, /api/users)'),
  PRODUCT_SERVICE_URL: upstream(3002).describe('product-service base URL (/api/products)'),
  ORDER_SERVICE_URL: upstream(3003).describe('order-service base URL (/api/orders)'),
  INVENTORY_SERVICE_URL: upstream(3004).describe('inventory-service base URL (/api/inventory)'),
  PAYMENT_SERVICE_URL: upstream(3005).describe('payment-service base URL (/api/payments)'),
  EVENT_BUS_URL: upstream(3006).describe('event-bus base URL (/api/orders/:id/events, Server-Sent Events)'),
  ALLOWED_ORIGINS: list().default([]).describe('Comma-separated browser origins allowed by CORS (empty: none)'),
  TRUST_PROXY: boolean(false).describe('One trusted load balancer in front: the client IP is the right-most X-Forwarded-For entry (the address it saw)'),
  BODY_LIMIT_BYTES: positiveInt(1024 * 1024).describe('Largest request body streamed to an upstream; larger is 413'),
  TIMEOUT_DEFAULT_MS: milliseconds(10_000).describe('How long an upstream may take to send response headers before 504 (0: no limit)'),
  ...perGroupTimeouts,
  UPSTREAM_MAX_SOCKETS: positiveInt(256).describe('Keep-alive connections per upstream (Server-Sent Events are not limited)'),
  CIRCUIT_FAILURE_THRESHOLD: positiveInt(5).describe('Consecutive failures (refused, reset, timeout) that open an upstream’s circuit'),
  CIRCUIT_OPEN_MS: positiveInt(10_000).describe('How long an open circuit answers 503 before one probe request is let through'),
  TOKEN_CACHE_SIZE: positiveInt(10_000).describe('Verified tokens kept in memory (LRU)'),
  TOKEN_CACHE_TTL_MS: positiveInt(60_000).describe('Longest a verified token is trusted from the cache (never past its exp)'),
  RATE_LIMIT_ENABLED: boolean(true).describe('Rate limiting on /api'),
  RATE_LIMIT_DEFAULT: rateRule().default({ limit: 300, windowMs: 60_000 }).describe('Rate limit of every route group without its own (e.g. 300/60s)'),
  ...perGroupRateLimits,
  RATE_LIMIT_AUTH: rateRule().default({ limit: 20, windowMs: 60_000 }).describe('Rate limit of /api/auth (login, register) per IP'),
  RATE_LIMIT_SYNC_MS: positiveInt(50).describe('How often local counts are sent to Redis in one pipeline'),
  RATE_LIMIT_EXACT_FROM: z.coerce.number().min(0).max(1).default(0.5).describe('Share of a limit after which each request awaits Redis for an exact count'),
  RATE_LIMIT_KEY_PREFIX: z.string().default('ratelimit:gateway').describe('Redis key prefix (replicas that share limits share it)'),
  DOCS_CACHE_TTL_MS: milliseconds(60_000).describe('How long the merged OpenAPI document is cached'),
});

export type Config = z.infer<typeof configSchema>;

export const rateRuleFor = (config: Config, group: Group): RateRule => config[`RATE_LIMIT_${upper(group) as Uppercase<Group>}`] ?? config.RATE_LIMIT_DEFAULT;
export const timeoutFor = (config: Config, group: Group): number => config[`TIMEOUT_${upper(group) as Uppercase<Group>}_MS`] ?? config.TIMEOUT_DEFAULT_MS;
