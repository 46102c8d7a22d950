import type { Issuer, Revocations, Role } from '@cloudretail/auth';
import { AppError, conflict, notFound, unauthorized } from '@cloudretail/errors';
import type { Db } from '@cloudretail/db';
import { createEvent, enqueue } from '@cloudretail/events';
import type { Logger } from '@cloudretail/logging';
import type { LoginThrottle } from '../data-access/login-throttle';
import type { NewUser, UserRepository } from '../data-access/user-repository';
import type { PasswordHasher } from './password';
import { type LoginInput, type ProfilePatch, type RegisterInput, type Session, type User, normaliseEmail } from './user';

interface Deps {
  db: Db;
  users: UserRepository;
  hasher: PasswordHasher;
  throttle: LoginThrottle;
  issuer: Issuer;
  revocations: Revocations;
  logger: Logger;
}

/** One message for unknown email and wrong password, so a login never reveals which accounts exist. */
const BAD_CREDENTIALS = 'Invalid email or password';

export function userUseCases({ db, users, hasher, throttle, issuer, revocations, logger }: Deps) {
  /** A new token is never older than the user's last revocation (a login right after a logout works). */
  const session = async (user: User, { isNew = false } = {}): Promise<Session> => {
    const notBefore = isNew
      ? 0
      : await revocations.notBefore(user.id, { fresh: true }).catch((error: unknown) => {
          throw new AppError('service_unavailable', 'Login is temporarily unavailable', undefined, { cause: error });
        });
    return { user, token: issuer.sign({ userId: user.id, role: user.role }, { notBefore }) };
  };

  // Verified against when the email is unknown, so that path costs the same scrypt work as a real check.
  const dummyHash = hasher.hash('dummy password that matches nothing');

  /** Inserts the user and its UserRegistered event in one transaction; null when the email is taken. */
  const createUser = (user: NewUser) =>
    db.transaction(async (tx) => {
      const created = await users.insert(user, tx);
      if (created) enqueue(tx, [createEvent('UserRegistered', created.id, { userId: created.id, email: created.email, role: created.role })]);
      return created;
    });

  async function assertNotThrottled(email: string, ip: string): Promise<void> {
    let waitSeconds: number;
    try {
      waitSeconds = await throttle.acquire(email, ip);
    } catch (error) {
      // Without the counters there is no brute-force protection, so logins stop rather than go unguarded.
      throw new AppError('service_unavailable', 'Login is temporarily unavailable', undefined, { cause: error });
    }
    if (waitSeconds > 0) throw new AppError('rate_limited', 'Too many failed login attempts; try again later', { retryAfterSeconds: waitSeconds });
  }

  /** Upgrades a hash made with weaker parameters; the login has already succeeded, so failures are only logged. */
  function rehashIfOutdated(userId: string, password: string, stored: string): void {
    if (!hasher.needsRehash(stored)) return;
    hasher
      .hash(password)
      .then((hash) => users.setPasswordHash(userId, hash))
      .catch((error) => logger.warn({ err: error, userId }, 'password rehash failed'));
  }

  return {
    async register({ email, password, name }: RegisterInput): Promise<Session> {
      const user = await createUser({ email, name, role: 'customer', passwordHash: await hasher.hash(password) });
      if (!user) throw conflict('An account with this email already exists');
      return session(user, { isNew: true });
    },

    async login({ email, password }: LoginInput, ip: string): Promise<Session> {
      await assertNotThrottled(email, ip);
      const found = await users.findCredentials(email);
      const valid = await hasher.verify(password, found?.passwordHash ?? (await dummyHash));
      if (!found || !valid) throw unauthorized(BAD_CREDENTIALS);
      // The login stands even if the counters cannot be reset; they expire with their window anyway.
      await throttle.succeeded(email, ip).catch((error) => logger.warn({ err: error }, 'login throttle reset failed'));
      rehashIfOutdated(found.user.id, password, found.passwordHash);
      return session(found.user);
    },

    /** Ends every session of the user: all tokens issued so far stop working (see Revocations). */
    async logout(userId: string): Promise<void> {
      await revocations.revoke(userId, issuer.expiresInSeconds);
    },

    /** Changes a user's role; their existing tokens (which carry the old role) are revoked. */
    async setRole(actorId: string, userId: string, role: Role): Promise<User> {
      if (actorId === userId) throw conflict('Admins cannot change their own role');
      const user = await users.setRole(userId, role);
      if (!user) throw notFound('User');
      await revocations.revoke(userId, issuer.expiresInSeconds);
      return user;
    },

    async getProfile(userId: string): Promise<User> {
      const user = await users.findById(userId);
      if (!user) throw notFound('User');
      return user;
    },

    async updateProfile(userId: string, patch: ProfilePatch): Promise<User> {
      const user = await users.update(userId, patch);
      if (!user) throw notFound('User');
      return user;
    },

    /**
     * Creates the bootstrap admin unless an account with that email exists. Safe when replicas start
     * together: the insert is ON CONFLICT DO NOTHING, so exactly one of them creates it (and its event).
     */
    async ensureAdmin(email: string, password: string): Promise<'created' | 'exists'> {
      const normalised = normaliseEmail(email);
      const existing = await users.findCredentials(normalised);
      if (existing) {
        if (existing.user.role !== 'admin') logger.warn({ userId: existing.user.id }, 'ADMIN_EMAIL belongs to an existing non-admin account; it was left unchanged');
        return 'exists';
      }
      const created = await createUser({ email: normalised, name: 'Administrator', role: 'admin', passwordHash: await hasher.hash(password) });
      return created ? 'created' : 'exists';
    },
  };
}

export type UserUseCases = ReturnType<typeof userUseCases>;
