import { randomUUID } from 'node:crypto';
import type { Role } from '@cloudretail/auth';
import type { Db, Tx } from '@cloudretail/db';
import type { ProfilePatch, User } from '../domain/user';

interface Row {
  id: string;
  email: string;
  name: string;
  role: Role;
  preferences: Record<string, unknown>;
  password_hash: string;
  created_at: Date;
}

const toUser = (r: Row): User => ({
  id: r.id,
  email: r.email,
  name: r.name,
  role: r.role,
  preferences: r.preferences,
  createdAt: r.created_at.toISOString(),
});

/** The password hash is selected only where a credential check needs it, and never leaves as part of a User. */
const COLUMNS = 'id, email, name, role, preferences, created_at';

export interface NewUser {
  email: string;
  name: string;
  role: Role;
  passwordHash: string;
}

/**
 * Users as plain records; the email passed in must already be normalised. An insert runs in the
 * caller's transaction (its UserRegistered event commits with it); the other statements stand alone.
 */
export function userRepository(db: Db) {
  return {
    /** Inserts a user; resolves null when the email is taken (also when a concurrent insert won). */
    async insert(user: NewUser, tx: Tx): Promise<User | null> {
      const rows = await tx.query<Row>(
        `INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email) DO NOTHING RETURNING ${COLUMNS}`,
        [randomUUID(), user.email, user.name, user.role, user.passwordHash],
      );
      return rows[0] ? toUser(rows[0]) : null;
    },

    async findById(id: string): Promise<User | null> {
      const [row] = await db.query<Row>(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id]);
      return row ? toUser(row) : null;
    },

    /** The user and their password hash, for a credential check. */
    async findCredentials(email: string): Promise<{ user: User; passwordHash: string } | null> {
      const [row] = await db.query<Row>(`SELECT ${COLUMNS}, password_hash FROM users WHERE email = $1`, [email]);
      return row ? { user: toUser(row), passwordHash: row.password_hash } : null;
    },

    async update(id: string, patch: ProfilePatch): Promise<User | null> {
      const sets: string[] = ['updated_at = now()'];
      const params: unknown[] = [id];
      if (patch.name !== undefined) sets.push(`name = $${params.push(patch.name)}`);
      if (patch.preferences !== undefined) sets.push(`preferences = $${params.push(JSON.stringify(patch.preferences))}::jsonb`);
      const [row] = await db.query<Row>(`UPDATE users SET ${sets.join(', ')} WHERE id = $1 RETURNING ${COLUMNS}`, params);
      return row ? toUser(row) : null;
    },

    async setRole(id: string, role: Role): Promise<User | null> {
      const [row] = await db.query<Row>(`UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [id, role]);
      return row ? toUser(row) : null;
    },

    async setPasswordHash(id: string, passwordHash: string): Promise<void> {
      await db.execute('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [id, passwordHash]);
    },
  };
}

export type UserRepository = ReturnType<typeof userRepository>;
