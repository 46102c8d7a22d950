import { setTimeout as sleep } from 'node:timers/promises';
import { type Db, type Sequelize, type Tx, createSequelize, dbOf, migrate } from '@cloudretail/db';
import { createTestDatabase } from '@cloudretail/testing';
import { claimInbox, inboxMigration } from '../src';
import { stockEvent, uniqueName } from './support';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let sequelize: Sequelize;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('events');
  sequelize = createSequelize(database.url);
  db = dbOf(sequelize);
  await migrate(sequelize, [inboxMigration], 'up');
  // Stands in for a consumer's own state, written in the same transaction as the inbox row.
  await db.execute('CREATE TABLE stock_levels (event_id uuid NOT NULL, product_id uuid NOT NULL, available int NOT NULL)');
});
afterAll(async () => {
  await sequelize.close();
  await database.drop();
});

type Event = ReturnType<typeof stockEvent>;
const applyStock = (event: Event, tx: Tx) => tx.execute('INSERT INTO stock_levels (event_id, product_id, available) VALUES ($1, $2, $3)', [event.id, event.payload.productId, event.payload.available]);
/** What startConsumer does for each event of a batch: claim, and apply only what was new. */
const handle = (group: string, events: Event[], apply: (event: Event, tx: Tx) => Promise<unknown> = applyStock) =>
  db.transaction(async (tx) => {
    const fresh = await claimInbox(tx, group, events.map((e) => e.id));
    const claimed = events.filter((e) => fresh.delete(e.id)); // an event twice in the batch is applied once
    for (const event of claimed) await apply(event, tx);
    return claimed.map((e) => e.id);
  });
const count = async (sql: string, params: unknown[]) => (await db.query<{ n: number }>(sql, params))[0].n;
const writes = (eventId: string) => count('SELECT count(*)::int AS n FROM stock_levels WHERE event_id = $1', [eventId]);
const inboxRows = (group: string, eventId: string) => count('SELECT count(*)::int AS n FROM inbox WHERE consumer_group = $1 AND event_id = $2', [group, eventId]);

describe('claimInbox', () => {
  it('when the same event arrives twice, then it is claimed once and the duplicate is skipped', async () => {
    const group = uniqueName('inventory');
    const event = stockEvent();

    const first = await handle(group, [event]);
    const duplicate = await handle(group, [event]);

    expect([first, duplicate]).toEqual([[event.id], []]);
    expect(await writes(event.id)).toBe(1);
    expect(await inboxRows(group, event.id)).toBe(1);
  });

  it('when a batch holds new events, handled ones and one event twice, then one statement claims exactly the new ones, once', async () => {
    const group = uniqueName('inventory');
    const [handled, fresh, twice] = [stockEvent(), stockEvent(), stockEvent()];
    await handle(group, [handled]);

    const claimed = await handle(group, [fresh, handled, twice, twice]);

    expect(claimed.sort()).toEqual([fresh.id, twice.id].sort());
    expect(await writes(handled.id)).toBe(1);
    expect(await writes(twice.id)).toBe(1);
    expect(await inboxRows(group, twice.id)).toBe(1);
  });

  it('when the transaction rolls back, then the inbox row rolls back with the handler’s writes, and the retry handles it again', async () => {
    const group = uniqueName('inventory');
    const event = stockEvent();
    const failing = async (e: Event, tx: Tx) => {
      await applyStock(e, tx);
      throw new Error('constraint violated downstream');
    };

    await expect(handle(group, [event], failing)).rejects.toThrow('constraint violated downstream');
    expect(await inboxRows(group, event.id)).toBe(0);
    expect(await writes(event.id)).toBe(0);

    expect(await handle(group, [event])).toEqual([event.id]);
    expect(await writes(event.id)).toBe(1);
  });

  it('when duplicates are handled concurrently, then only one claims it (the other waits on the row lock, then skips)', async () => {
    const group = uniqueName('inventory');
    const event = stockEvent();
    const slow = async (e: Event, tx: Tx) => {
      await sleep(100); // the second delivery arrives while the first still holds its transaction
      await applyStock(e, tx);
    };

    const results = await Promise.all([handle(group, [event], slow), handle(group, [event], slow)]);

    expect(results.map((r) => r.length).sort()).toEqual([0, 1]);
    expect(await writes(event.id)).toBe(1);
  });

  it('when two groups handle the same event, then each group claims it once', async () => {
    const event = stockEvent();
    const [billing, shipping] = [uniqueName('billing'), uniqueName('shipping')];

    const results = [await handle(billing, [event]), await handle(shipping, [event])];

    expect(results).toEqual([[event.id], [event.id]]);
    expect(await writes(event.id)).toBe(2);
  });
});
