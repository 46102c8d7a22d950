import { randomUUID } from 'node:crypto';
import { type Sequelize, createSequelize, dbOf, migrate } from '@cloudretail/db';
import { createTestDatabase } from '@cloudretail/testing';
import { migrations } from '../src/data-access/migrations';
import { type SandboxProvider, createSandboxProvider } from '../src/data-access/sandbox-provider';

const capture = (token: string, orderId = randomUUID(), amountCents = 1000) => ({ orderId, amountCents, currency: 'USD', token });

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let pools: Sequelize[];
let sandbox: SandboxProvider;
/** Another process's sandbox adapter: its own pool on the same database. */
const anotherReplica = () => {
  const pool = createSequelize(db.url, { poolMax: 2 });
  pools.push(pool);
  return createSandboxProvider(dbOf(pool));
};

beforeAll(async () => {
  db = await createTestDatabase('sandbox');
  pools = [];
  const sequelize = createSequelize(db.url, { poolMax: 4 });
  pools.push(sequelize);
  await migrate(sequelize, migrations, 'up');
  sandbox = createSandboxProvider(dbOf(sequelize));
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await db.drop();
});

describe('sandbox payment provider', () => {
  it.each(['tok_visa', 'tok_mastercard'])('when the token is %s, then the capture is approved with a provider reference', async (token) => {
    const result = await sandbox.capture(capture(token));

    expect(result).toEqual({ approved: true, providerRef: expect.stringMatching(/^sbx_ch_/) });
  });

  it('when the token is tok_chargeDeclined, then the capture is declined with reason card_declined', async () => {
    expect(await sandbox.capture(capture('tok_chargeDeclined'))).toEqual({ approved: false, providerRef: expect.any(String), declineReason: 'card_declined' });
  });

  it('when the token is unknown, then the capture is declined with reason invalid_token', async () => {
    expect(await sandbox.capture(capture('tok_nope'))).toMatchObject({ approved: false, declineReason: 'invalid_token' });
  });

  it('when the same order is captured twice, also at once and from another replica, then the first result comes back and there is one charge (orderId is the idempotency key)', async () => {
    const orderId = randomUUID();

    const [first, second] = await Promise.all([sandbox.capture(capture('tok_visa', orderId)), anotherReplica().capture(capture('tok_visa', orderId))]);
    const third = await sandbox.capture(capture('tok_chargeDeclined', orderId));

    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(await sandbox.capturedCount(orderId)).toBe(1);
  });

  it('when a charge made through one replica is refunded through another, twice with the same key, then it is refunded once', async () => {
    const { providerRef } = await sandbox.capture(capture('tok_visa'));
    const other = anotherReplica();

    await other.refund(providerRef, 1000, 'refund-1');
    await Promise.all([other.refund(providerRef, 1000, 'refund-1'), sandbox.refund(providerRef, 1000, 'refund-1')]);

    expect(await sandbox.refundedCents(providerRef)).toBe(1000);
  });

  it('when a declined or unknown charge, or more than the amount (also in total), is refunded, then the refund is refused', async () => {
    const declined = await sandbox.capture(capture('tok_chargeDeclined'));
    const approved = await sandbox.capture(capture('tok_visa', randomUUID(), 500));

    await expect(sandbox.refund(declined.providerRef, 1000, 'k1')).rejects.toThrow(/no captured charge/);
    await expect(sandbox.refund('sbx_ch_unknown', 1, 'k2')).rejects.toThrow(/no captured charge/);
    await expect(sandbox.refund(approved.providerRef, 501, 'k3')).rejects.toThrow(/exceeds/);
    await sandbox.refund(approved.providerRef, 300, 'k4');
    await expect(sandbox.refund(approved.providerRef, 300, 'k5')).rejects.toThrow(/exceeds/);
    expect(await sandbox.refundedCents(approved.providerRef)).toBe(300);
  });
});
