import type { Migration } from '@cloudretail/db';
import { outboxMigrations } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  ...outboxMigrations,
  {
    name: '001-create-users',
    up: ({ sql }) =>
      sql(`
        CREATE TABLE users (
          id uuid PRIMARY KEY,
          -- Only normalised emails get in, so the unique index below is on the normalised value.
          email text NOT NULL CHECK (email = lower(btrim(email))),
          name text NOT NULL,
          role text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
          password_hash text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX users_email_key ON users (email);
      `),
    down: ({ sql }) => sql('DROP TABLE users'),
  },
  {
    // Expand-only: a constant default makes this a catalogue change (no table rewrite, PG 11+), and
    // the previous version, which neither reads nor writes the column, keeps working beside it.
    // lock_timeout: rather fail the migration than queue behind a long transaction and block every query.
    name: '002-add-user-preferences',
    up: ({ sql }) =>
      sql(`
        SET LOCAL lock_timeout = '5s';
        ALTER TABLE users ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}'::jsonb;
      `),
    down: ({ sql }) => sql('ALTER TABLE users DROP COLUMN preferences'),
  },
];
