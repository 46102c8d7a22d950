import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, port, positiveInt, z } from '@cloudretail/config';

export const configSchema = z
  .object({
    ...dataServiceBase,
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
    LOGIN_MAX_FAILURES_PER_ACCOUNT: positiveInt(5).describe('Failed logins allowed per email within the window before 429'),
    LOGIN_MAX_FAILURES_PER_IP: positiveInt(20).describe('Failed logins allowed per client IP within the window before 429'),
    LOGIN_THROTTLE_WINDOW_SECONDS: positiveInt(900).describe('Length of the login throttling window, counted from the first failure'),
    LOGIN_THROTTLE_KEY_PREFIX: z.string().min(1).default('user-service:login').describe('Redis key prefix of the login failure counters'),
  })
  // Half an admin account is a deployment mistake: say so at start-up instead of silently skipping it.
  .superRefine((c, ctx) => {
    if (c.ADMIN_EMAIL && !c.ADMIN_PASSWORD) ctx.addIssue({ code: 'custom', path: ['ADMIN_PASSWORD'], message: 'is required when ADMIN_EMAIL is set' });
    if (c.ADMIN_PASSWORD && !c.ADMIN_EMAIL) ctx.addIssue({ code: 'custom', path: ['ADMIN_EMAIL'], message: 'is required when ADMIN_PASSWORD is set' });
  });

export type Config = z.infer<typeof configSchema>;
