import { z } from '@cloudretail/config';
import { ROLES } from '@cloudretail/auth';

/** Emails are compared and stored trimmed and lower-cased, so `Ada@X.com ` and `ada@x.com` are one account. */
export const normaliseEmail = (email: string) => email.trim().toLowerCase();

const Email = z.string().trim().toLowerCase().max(254).email();
const Name = z.string().trim().min(1, 'must not be empty').max(100);
const MAX_PREFERENCES_BYTES = 16 * 1024;
const Preferences = z
  .record(z.string(), z.unknown())
  .refine((p) => Buffer.byteLength(JSON.stringify(p)) <= MAX_PREFERENCES_BYTES, `must be at most ${MAX_PREFERENCES_BYTES} bytes as JSON`)
  .describe('Free-form JSON object owned by the client');

export const RegisterInput = z
  .object({
    email: Email,
    // The upper bound only stops absurd inputs; scrypt itself copes with any length.
    password: z.string().min(8, 'must be at least 8 characters').max(1024),
    name: Name,
  })
  .strict();

/** Login checks presence only: format rules would tell a caller which emails cannot exist. */
export const LoginInput = z
  .object({
    email: z.string().trim().toLowerCase().min(1).max(1024),
    password: z.string().min(1).max(1024),
  })
  .strict();

export const ProfilePatch = z
  .object({ name: Name.optional(), preferences: Preferences.optional() })
  .strict()
  .refine((p) => p.name !== undefined || p.preferences !== undefined, 'at least one of name and preferences is required');

export const UserIdParams = z.object({ id: z.uuid() });
export const RoleChange = z.object({ role: z.enum(ROLES) }).strict();

export const User = z
  .object({
    id: z.uuid(),
    email: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    preferences: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
  })
  .meta({ id: 'User' });

export const Session = z.object({ user: User, token: z.string().describe('Bearer JWT') }).meta({ id: 'Session' });

export type RegisterInput = z.infer<typeof RegisterInput>;
export type LoginInput = z.infer<typeof LoginInput>;
export type ProfilePatch = z.infer<typeof ProfilePatch>;
export type User = z.infer<typeof User>;
export type Session = z.infer<typeof Session>;
