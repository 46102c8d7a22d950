import { isIP } from 'node:net';
import { privateKeyOf, publicKeyOf } from '@cloudretail/auth';
import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, port, positiveInt, z } from '@cloudretail/config';

const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * express's `trust proxy` setting: `true`/`false`, a hop count, or a comma-separated list of
 * addresses, CIDRs and the names loopback, linklocal, uniquelocal. Checked here so a typo names the
 * variable at start-up instead of failing inside express.
 */
const trustProxy = () =>
  z
    .string()
    .default('loopback, uniquelocal')
    .transform((value, ctx): boolean | number | string[] => {
      const v = value.trim();
      if (v === 'true' || v === 'false') return v === 'true';
      if (/^\d+$/.test(v)) return Number(v);
      const entries = v.split(',').map((e) => e.trim()).filter(Boolean);
      const bad = entries.filter((e) => !PROXY_RANGES.has(e) && !isIP(e.split('/')[0]));
      if (entries.length === 0 || bad.length > 0) {
        ctx.addIssue({ code: 'custom', message: `must be true, false, a hop count or a list of addresses, CIDRs, loopback, linklocal, uniquelocal (bad: ${bad.join(', ') || 'empty'})` });
        return z.NEVER;
      }
      return entries;
    });

// user-service verifies its tokens with its own keys: the verifier keys of other services do not apply.
const { JWT_PUBLIC_KEY: _publicKey, JWKS_URL: _jwksUrl, ...base } = dataServiceBase;

export const configSchema = z
  .object({
    ...base,
  ...eventsConfig,
    PORT: port(3001).describe('HTTP port'),
    DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_users'),
    ADMIN_EMAIL: z.string().trim().toLowerCase().email().optional().describe('Email of the admin account created at start-up (with ADMIN_PASSWORD)'),
    ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional().describe('Password of that admin account (with ADMIN_EMAIL)'),
    PASSWORD_HASH_COST: z.coerce
      .number()
      .int()
      .min(14)
      .max(20)
      .default(15)
      .describe('scrypt cost as log2(N); raising it re-hashes each password at its next login'),
    TRUST_PROXY: trustProxy().describe(
      'Peers whose X-Forwarded-For names the client (express `trust proxy`): the gateway. Default loopback and private ranges; `false` uses the socket address',
    ),
    LOGIN_MAX_FAILURES_PER_ACCOUNT: positiveInt(5).describe(
      'Failed logins per email within the window before 429 for clients that never signed in to it (a known client: its own failures at its address)',
    ),
    LOGIN_MAX_FAILURES_PER_IP: positiveInt(20).describe('Failed logins allowed per client IP within the window before 429'),
    LOGIN_KNOWN_CLIENT_DAYS: positiveInt(30).describe('How long an address that signed in to an account stays exempt from that account’s lock'),
    LOGIN_THROTTLE_WINDOW_SECONDS: positiveInt(900).describe('Length of the login throttling window, counted from the first failure'),
    JWT_PRIVATE_KEY: z.string().min(1).optional().describe('PEM RSA private key that signs tokens (required in production; unset elsewhere: a key pair is generated at start-up)'),
    JWT_PREVIOUS_PUBLIC_KEY: z.string().min(1).optional().describe('PEM public key of the signing key before a rotation, still served in the JWKS until its tokens expire'),
    JWT_EXPIRES_IN_SECONDS: positiveInt(3600).describe('Token lifetime'),
    LOGIN_THROTTLE_KEY_PREFIX: z.string().min(1).default('user-service:login').describe('Redis key prefix of the login failure counters'),
  })
  // Half an admin account is a deployment mistake: say so at start-up instead of silently skipping it.
  .superRefine((c, ctx) => {
    if (c.NODE_ENV === 'production' && !c.JWT_PRIVATE_KEY) ctx.addIssue({ code: 'custom', path: ['JWT_PRIVATE_KEY'], message: 'is required when NODE_ENV=production' });
    for (const [variable, parse] of [['JWT_PRIVATE_KEY', privateKeyOf], ['JWT_PREVIOUS_PUBLIC_KEY', publicKeyOf]] as const) {
      const value = c[variable];
      if (!value) continue;
      try {
        parse(value);
      } catch {
        ctx.addIssue({ code: 'custom', path: [variable], message: 'must be a PEM RSA key' });
      }
    }
    if (c.ADMIN_EMAIL && !c.ADMIN_PASSWORD) ctx.addIssue({ code: 'custom', path: ['ADMIN_PASSWORD'], message: 'is required when ADMIN_EMAIL is set' });
    if (c.ADMIN_PASSWORD && !c.ADMIN_EMAIL) ctx.addIssue({ code: 'custom', path: ['ADMIN_EMAIL'], message: 'is required when ADMIN_PASSWORD is set' });
  });

export type Config = z.infer<typeof configSchema>;
