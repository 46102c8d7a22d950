import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '@cloudretail/db';
import type { Product, ProductInput, ProductPatch, ProductQuery } from '../domain/product';

interface Row {
  id: string;
  sku: string;
  name: string;
  description: string;
  category: string;
  price_cents: number;
  currency: string;
  active: boolean;
  created_at: Date;
  updated_at: Date;
}

const toProduct = (r: Row): Product => ({
  id: r.id,
  sku: r.sku,
  name: r.name,
  description: r.description,
  category: r.category,
  priceCents: r.price_cents,
  currency: r.currency,
  active: r.active,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const COLUMNS = 'id, sku, name, description, category, price_cents, currency, active, created_at, updated_at';

/** Products as plain records. Writes run in the caller's transaction (its outbox event commits with them); reads need none. */
export function productRepository(db: Db) {
  const select = async (on: Db | Tx, sql: string, params: unknown[]) => (await on.query<Row>(sql, params)).map(toProduct);

  return {
    /** Inserts a product; resolves null when the SKU is taken. */
    async insert(input: ProductInput, tx: Tx): Promise<Product | null> {
      const rows = await select(
        tx,
        `INSERT INTO products (id, sku, name, description, category, price_cents, currency)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sku) DO NOTHING RETURNING ${COLUMNS}`,
        [randomUUID(), input.sku, input.name, input.description, input.category, input.priceCents, input.currency],
      );
      return rows[0] ?? null;
    },

    async update(id: string, patch: ProductPatch, tx: Tx): Promise<Product | null> {
      const columns: Record<keyof ProductPatch, string> = {
        name: 'name',
        description: 'description',
        category: 'category',
        priceCents: 'price_cents',
        currency: 'currency',
        active: 'active',
      };
      const entries = Object.entries(patch).filter(([, v]) => v !== undefined) as [keyof ProductPatch, unknown][];
      const sets = entries.map(([key], i) => `${columns[key]} = $${i + 2}`);
      const rows = await select(tx, `UPDATE products SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 RETURNING ${COLUMNS}`, [id, ...entries.map(([, v]) => v)]);
      return rows[0] ?? null;
    },

    async findById(id: string): Promise<Product | null> {
      return (await select(db, `SELECT ${COLUMNS} FROM products WHERE id = $1`, [id]))[0] ?? null;
    },

    /** Active products matching the filters, ordered by name then id so pages are stable. */
    async list({ page, limit, q, category }: ProductQuery): Promise<{ items: Product[]; total: number }> {
      const where = ['active'];
      const params: unknown[] = [];
      if (q) where.push(`search @@ websearch_to_tsquery('english', $${params.push(q)})`);
      if (category) where.push(`category = $${params.push(category)}`);
      const filter = where.join(' AND ');
      const [items, [{ total }]] = await Promise.all([
        select(db, `SELECT ${COLUMNS} FROM products WHERE ${filter} ORDER BY name, id LIMIT $${params.length + 1} OFFSET $${params.length + 2}`, [...params, limit, (page - 1) * limit]),
        db.query<{ total: string }>(`SELECT count(*) AS total FROM products WHERE ${filter}`, params),
      ]);
      return { items, total: Number(total) };
    },
  };
}

export type ProductRepository = ReturnType<typeof productRepository>;
