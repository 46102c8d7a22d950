import type { Migration } from '@cloudretail/db';
import { outboxMigrations } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  ...outboxMigrations,
  {
    name: '001-create-products',
    up: ({ sql }) =>
      sql(`
        CREATE TABLE products (
          id uuid PRIMARY KEY,
          sku text NOT NULL UNIQUE,
          name text NOT NULL,
          description text NOT NULL DEFAULT '',
          category text NOT NULL,
          price_cents integer NOT NULL CHECK (price_cents >= 0),
          currency char(3) NOT NULL DEFAULT 'USD',
          active boolean NOT NULL DEFAULT true,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          search tsvector GENERATED ALWAYS AS (to_tsvector('english', name || ' ' || description)) STORED
        );
        CREATE INDEX products_active_name ON products (name, id) WHERE active;
        CREATE INDEX products_category ON products (category) WHERE active;
        CREATE INDEX products_search ON products USING gin (search);
      `),
    down: ({ sql }) => sql('DROP TABLE products'),
  },
];
