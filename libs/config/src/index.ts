import { createPublicKey } from 'node:crypto';
import { z } from 'zod';

export { z };

/** One offending environment variable and what is wrong with it. */
export interface ConfigIssue {
  variable: string;
  message: string;
}

/** Thrown by {@link loadConfig}; its message names every offending variable at once. */
export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(`Invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Validates `env` against a schema whose keys are environment variable names.
 * Empty strings count as unset, so `PORT=` falls back to the default instead of failing oddly.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(root)'),
      message: issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message,
    })),
  );
}

/** Like {@link loadConfig}, but prints the error on one line and exits 78 (EX_CONFIG) on failure. */
export function loadConfigOrExit<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(78);
  }
}

/** Environment variables and their documentation, e.g. for a README table or a compose check. */
export function describeConfig(schema: z.ZodObject): { variable: string; description: string; default?: unknown; required: boolean }[] {
  return Object.entries(schema.shape).map(([variable, field]) => {
    const type = field as z.ZodType;
    const def = type instanceof z.ZodDefault ? type.def.defaultValue : undefined;
    return { variable, description: type.description ?? '', default: def, required: !type.safeParse(undefined).success };
  });
}

// Reusable field types. Each coerces from the string an environment variable holds.
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
export const milliseconds = (fallback: number) => z.coerce.number().int().min(0).default(fallback);
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
export const url = () => z.url();
export const boolean = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');
export const list = () =>
  z.string().transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** Keys every service reads. Compose them into a service schema with `.extend()`. */
export const serviceBase = {
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development').describe('Runtime mode'),
  HOST: z.string().min(1).default('0.0.0.0').describe('Address the HTTP port listens on (npm start: 127.0.0.1; containers: every address)'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level'),
  SHUTDOWN_DELAY_MS: milliseconds(5000).describe('How long readiness reports 503 before the server stops accepting connections'),
  SHUTDOWN_TIMEOUT_MS: milliseconds(20000).describe('Deadline for in-flight requests once draining starts'),
  FAULT_ERROR_RATE: z.coerce.number().min(0).max(1).default(0).describe('Fault drills only: share of requests answered 500 (deployment verification tests)'),
  FAULT_DELAY_MS: milliseconds(0).describe('Fault drills only: extra latency added to every request'),
};

function isPublicKeyPem(text: string): boolean {
  try {
    return createPublicKey(text.replace(/\\n/g, '\n')).asymmetricKeyType === 'rsa';
  } catch {
    return false;
  }
}

/** Where a verifier gets user-service's public keys; only user-service holds the private key. */
export const jwtVerifierConfig = {
  JWT_PUBLIC_KEY: z.string().refine(isPublicKeyPem, 'must be a PEM public key').optional().describe('PEM RSA public key that verifies JWTs (pinned); when unset, keys come from JWKS_URL'),
  JWKS_URL: url().default('http://127.0.0.1:3001/.well-known/jwks.json').describe('user-service JWKS that verifies JWTs (fetched, cached, refetched on an unknown kid)'),
};

/** Keys a service with a database, Redis and JWT verification reads. */
export const dataServiceBase = {
  ...serviceBase,
  DATABASE_URL: url().describe('PostgreSQL URL of this service’s own database (created if missing)'),
  REDIS_URL: url().default('redis://127.0.0.1:6379').describe('Redis URL'),
  ...jwtVerifierConfig,
  JWT_REVOCATION_KEY_PREFIX: z.string().default('auth:not-before:').describe('Redis key prefix of per-user token revocations (the same in every service of a platform)'),
  JWT_REVOCATION_CACHE_MS: milliseconds(5000).describe('How long a revocation lookup is cached: the longest a logged-out token still works'),
  MIGRATE_ON_START: boolean(true).describe('Apply pending migrations at start-up (Kubernetes runs `migrate up` in an init container and sets false)'),
};
