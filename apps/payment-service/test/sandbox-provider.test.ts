import { randomUUID } from 'node:crypto';
import { createSandboxProvider } from '../src/data-access/sandbox-provider';

const capture = (token: string, orderId = randomUUID(), amountCents = 1000) => ({ orderId, amountCents, currency: 'USD', token });

describe('sandbox payment provider', () => {
  it.each(['tok_visa', 'tok_mastercard'])('when the token is %s, then the capture is approved with a provider reference', async (token) => {
    const result = await createSandboxProvider().capture(capture(token));

    expect(result).toEqual({ approved: true, providerRef: expect.stringMatching(/^sbx_ch_/) });
  });

  it('when the token is tok_chargeDeclined, then the capture is declined with reason card_declined', async () => {
    expect(await createSandboxProvider().capture(capture('tok_chargeDeclined'))).toEqual({ approved: false, providerRef: expect.any(String), declineReason: 'card_declined' });
  });

  it('when the token is unknown, then the capture is declined with reason invalid_token', async () => {
    expect(await createSandboxProvider().capture(capture('tok_nope'))).toMatchObject({ approved: false, declineReason: 'invalid_token' });
  });

  it('when the same order is captured twice, then the first result comes back and there is one charge (orderId is the idempotency key)', async () => {
    const sandbox = createSandboxProvider();
    const orderId = randomUUID();

    const [first, second] = await Promise.all([sandbox.capture(capture('tok_visa', orderId)), sandbox.capture(capture('tok_visa', orderId))]);
    const third = await sandbox.capture(capture('tok_chargeDeclined', orderId));

    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(sandbox.capturedCount(orderId)).toBe(1);
  });

  it('when an approved charge is refunded (even twice), then it is marked refunded', async () => {
    const sandbox = createSandboxProvider();
    const { providerRef } = await sandbox.capture(capture('tok_visa'));

    await sandbox.refund(providerRef, 1000);
    await sandbox.refund(providerRef, 1000);

    expect(sandbox.isRefunded(providerRef)).toBe(true);
  });

  it('when a declined or unknown charge, or more than the amount, is refunded, then the refund is refused', async () => {
    const sandbox = createSandboxProvider();
    const declined = await sandbox.capture(capture('tok_chargeDeclined'));
    const approved = await sandbox.capture(capture('tok_visa', randomUUID(), 500));

    await expect(sandbox.refund(declined.providerRef, 1000)).rejects.toThrow(/no captured charge/);
    await expect(sandbox.refund('sbx_ch_unknown', 1)).rejects.toThrow(/no captured charge/);
    await expect(sandbox.refund(approved.providerRef, 501)).rejects.toThrow(/exceeds/);
    expect(sandbox.isRefunded(approved.providerRef)).toBe(false);
  });
});
