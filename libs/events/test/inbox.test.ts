import { setTimeout as sleep } from 'node:timers/promises';
import { QueryTypes, type Sequelize, type Transaction, createSequelize, migrate } from '@cloudretail/db';
import { createTestDatabase } from '@cloudretail/testing';
import { handleOnce, inboxMigration } from '../src';
import { stockEvent, uniqueName } from './support';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sequelize: Sequelize;

beforeAll(async () => {
  db = await createTestDatabase('events');
  sequelize = createSequelize(db.url);
  await migrate(sequelize, [inboxMigration], 'up');
  // Stands in for a consumer's own state, written in the same transaction as the inbox row.
  await sequelize.query('CREATE TABLE stock_levels (event_id uuid NOT NULL, product_id uuid NOT NULL, available int NOT NULL)');
});
afterAll(async () => {
  await sequelize.close();
  await db.drop();
});

const applyStock = (event: ReturnType<typeof stockEvent>) => async (transaction: Transaction) => {
  await sequelize.query('INSERT INTO stock_levels (event_id, product_id, available) VALUES ($1, $2, $3)', {
    bind: [event.id, event.payload.productId, event.payload.available],
    transaction,
  });
};
const count = async (sql: string, bind: unknown[]) => ((await sequelize.query<{ n: number }>(sql, { bind, type: QueryTypes.SELECT }))[0]).n;
const writes = (eventId: string) => count('SELECT count(*)::int AS n FROM stock_levels WHERE event_id = $1', [eventId]);
const inboxRows = (group: string, eventId: string) => count('SELECT count(*)::int AS n FROM inbox WHERE consumer_group = $1 AND event_id = $2', [group, eventId]);

describe('handleOnce', () => {
  it('when the same event arrives twice, then the handler runs once and the duplicate is skipped', async () => {
    const group = uniqueName('inventory');
    const event = stockEvent();

    const first = await handleOnce(sequelize, group, event, applyStock(event));
    const duplicate = await handleOnce(sequelize, group, event, applyStock(event));

    expect([first, duplicate]).toEqual([true, false]);
    expect(await writes(event.id)).toBe(1);
    expect(await inboxRows(group, event.id)).toBe(1);
  });

  it('when the handler throws, then its writes and the inbox row roll back, and the retry runs it again', async () => {
    const group = uniqueName('inventory');
    const event = stockEvent();
    const failing = async (transaction: Transaction) => {
      await applyStock(event)(transaction);
      throw new Error('constraint violated downstream');
    };

    await expect(handleOnce(sequelize, group, event, failing)).rejects.toThrow('constraint violated downstream');
    expect(await inboxRows(group, event.id)).toBe(0);
    expect(await writes(event.id)).toBe(0);

    expect(await handleOnce(sequelize, group, event, applyStock(event))).toBe(true);
    expect(await writes(event.id)).toBe(1);
  });

  it('when duplicates are handled concurrently, then only one runs the handler', async () => {
    const group = uniqueName('inventory');
    const event = stockEvent();
    const slow = async (transaction: Transaction) => {
      await sleep(100); // the second delivery arrives while the first still holds its transaction
      await applyStock(event)(transaction);
    };

    const results = await Promise.all([handleOnce(sequelize, group, event, slow), handleOnce(sequelize, group, event, slow)]);

    expect(results.sort()).toEqual([false, true]);
    expect(await writes(event.id)).toBe(1);
  });

  it('when two groups handle the same event, then each group runs its handler once', async () => {
    const event = stockEvent();
    const [billing, shipping] = [uniqueName('billing'), uniqueName('shipping')];

    const results = [await handleOnce(sequelize, billing, event, applyStock(event)), await handleOnce(sequelize, shipping, event, applyStock(event))];

    expect(results).toEqual([true, true]);
    expect(await writes(event.id)).toBe(2);
  });
});
