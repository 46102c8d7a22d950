import { Client } from 'pg';
import { build, createTestDatabase } from '../src';

describe('createTestDatabase', () => {
  it('creates a database of its own that drop() removes, even with a connection still open', async () => {
    const db = await createTestDatabase('selftest');
    const client = new Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query('SELECT current_database() AS name');
    expect(rows[0].name).toBe(db.name);
    client.on('error', () => undefined); // DROP ... WITH (FORCE) terminates it
    await db.drop();
    await expect(new Client({ connectionString: db.url }).connect()).rejects.toThrow(/does not exist/);
  });

  it('builds payloads with unique values and applies overrides', () => {
    const a = build.product();
    const b = build.product({ priceCents: 1 });
    expect(a.sku).not.toBe(b.sku);
    expect(b.priceCents).toBe(1);
    expect(build.user().email).toMatch(/@example\.com$/);
  });
});
