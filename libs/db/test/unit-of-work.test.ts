import { createTestDatabase } from '@cloudretail/testing';
import { type Db, type Sequelize, type Tx, createSequelize, dbOf } from '../src';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let sequelize: Sequelize;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase('db');
  sequelize = createSequelize(database.url, { poolMax: 3 });
  db = dbOf(sequelize);
  await sequelize.query(`CREATE TABLE notes (
    id serial PRIMARY KEY, owner text NOT NULL, body text NOT NULL, big bigint NOT NULL DEFAULT 9007199254740993, at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notes_unique_body UNIQUE (owner, body) DEFERRABLE INITIALLY DEFERRED
  )`);
});
afterAll(async () => {
  await sequelize.close();
  await database.drop();
});

let owners = 0;
/** An owner of its own, so tests never count each other's rows. */
const newOwner = () => `owner-${(owners += 1)}-${Date.now()}`;
const note = (tx: Tx | Db, owner: string, body: string) => tx.execute('INSERT INTO notes (owner, body) VALUES ($1, $2)', [owner, body]);
/** Read on another pooled connection: only committed rows. */
const committedBodies = async (owner: string) => (await db.query<{ body: string }>('SELECT body FROM notes WHERE owner = $1 ORDER BY id', [owner])).map((r) => r.body);

describe('Db and Tx statements', () => {
  it('query resolves rows with sequelize’s type parsers, execute resolves the rows touched, inside and outside a transaction', async () => {
    const owner = newOwner();
    expect(await note(db, owner, 'a')).toBe(1);

    const [touched, rows] = await db.transaction(async (tx) => {
      await note(tx, owner, 'b');
      return [await tx.execute('UPDATE notes SET body = body || $2 WHERE owner = $1', [owner, '!']), await tx.query<{ body: string; big: string; at: Date }>('SELECT body, big, at FROM notes WHERE owner = $1 ORDER BY id', [owner])];
    });

    expect(touched).toBe(2);
    expect(rows.map((r) => r.body)).toEqual(['a!', 'b!']);
    expect(rows[0].big).toBe('9007199254740993'); // bigint as a string: no precision lost
    expect(rows[0].at).toBeInstanceOf(Date);
    expect(await db.execute('DELETE FROM notes WHERE owner = $1 AND body = $2', [owner, 'nothing'])).toBe(0);
    expect(await db.query('SELECT body FROM notes WHERE owner = $1 ORDER BY id', [owner])).toEqual([{ body: 'a!' }, { body: 'b!' }]);
  });

  it('a transaction’s statements run on its own connection: it reads its uncommitted writes, other connections do not', async () => {
    const owner = newOwner();

    await db.transaction(async (tx) => {
      await note(tx, owner, 'draft');
      expect((await tx.query('SELECT body FROM notes WHERE owner = $1', [owner])).length).toBe(1);
      expect(await committedBodies(owner)).toEqual([]);
    });

    expect(await committedBodies(owner)).toEqual(['draft']);
  });

  it('statements with parameters run as named prepared statements, prepared once per connection', async () => {
    const text = 'SELECT body FROM notes WHERE owner = $1 AND id > $2';
    const prepared = await db.transaction(async (tx) => {
      for (let i = 0; i < 3; i++) await tx.query(text, [newOwner(), i]);
      return tx.query<{ name: string }>('SELECT name FROM pg_prepared_statements WHERE statement = $1', [text]);
    });

    expect(prepared).toHaveLength(1);
    expect(prepared[0].name).toMatch(/^cr\d+_\d+$/);
  });
});

describe('unit of work hooks', () => {
  it('beforeCommit hooks run once each, in the order added (one added by a hook too), in the transaction, before the commit', async () => {
    const owner = newOwner();
    const ran: string[] = [];
    let txid: string | undefined;
    const txidOf = async (tx: Tx) => (await tx.query<{ id: string }>('SELECT txid_current()::text AS id WHERE $1::int = 1', [1]))[0].id;

    await db.transaction(async (tx) => {
      txid = await txidOf(tx);
      tx.beforeCommit(async () => {
        ran.push('first');
        expect(await txidOf(tx)).toBe(txid); // the same transaction, not one of its own
        expect(await committedBodies(owner)).toEqual([]); // not committed yet
        await note(tx, owner, 'from a hook');
        tx.beforeCommit(async () => void ran.push('added by first'));
      });
      tx.beforeCommit(async () => void ran.push('second'));
      await note(tx, owner, 'body');
    });

    expect(ran).toEqual(['first', 'second', 'added by first']);
    expect(await committedBodies(owner)).toEqual(['body', 'from a hook']);
  });

  it('afterCommit runs once the transaction has committed, before transaction() resolves', async () => {
    const owner = newOwner();
    const seen: Promise<string[]>[] = [];

    await db.transaction(async (tx) => {
      tx.afterCommit(() => void seen.push(committedBodies(owner))); // another connection: sees only what committed
      tx.beforeCommit(async () => void (await note(tx, owner, 'last write')));
      await note(tx, owner, 'body');
      expect(seen).toHaveLength(0);
    });

    expect(seen).toHaveLength(1);
    expect(await seen[0]).toEqual(['body', 'last write']);
  });

  it('when the COMMIT itself fails (a deferred constraint), then transaction() rejects and afterCommit never runs', async () => {
    const owner = newOwner();
    const ran: string[] = [];

    await expect(
      db.transaction(async (tx) => {
        tx.afterCommit(() => void ran.push('afterCommit'));
        await note(tx, owner, 'same');
        await note(tx, owner, 'same'); // checked only at COMMIT
      }),
    ).rejects.toMatchObject({ code: '23505', constraint: 'notes_unique_body' });

    expect(ran).toEqual([]);
    expect(await committedBodies(owner)).toEqual([]);
  });

  it('when the work throws, then everything rolls back: no hook runs after it, afterCommit never runs', async () => {
    const owner = newOwner();
    const ran: string[] = [];

    await expect(
      db.transaction(async (tx) => {
        tx.beforeCommit(async () => void ran.push('beforeCommit'));
        tx.afterCommit(() => void ran.push('afterCommit'));
        await note(tx, owner, 'body');
        throw new Error('use case refused');
      }),
    ).rejects.toThrow('use case refused');

    expect(ran).toEqual([]);
    expect(await committedBodies(owner)).toEqual([]);
  });

  it('when a beforeCommit hook throws, then the work and the earlier hooks’ writes roll back and afterCommit never runs', async () => {
    const owner = newOwner();
    const ran: string[] = [];

    await expect(
      db.transaction(async (tx) => {
        tx.afterCommit(() => void ran.push('afterCommit'));
        tx.beforeCommit(async () => void (await note(tx, owner, 'from a hook')));
        tx.beforeCommit(async () => {
          await tx.execute('INSERT INTO notes (owner, body) VALUES ($1, NULL)', [owner]); // NOT NULL violated
        });
        tx.beforeCommit(async () => void ran.push('after the failed hook'));
        await note(tx, owner, 'body');
      }),
    ).rejects.toThrow(/null value/);

    expect(ran).toEqual([]);
    expect(await committedBodies(owner)).toEqual([]);
  });
});
