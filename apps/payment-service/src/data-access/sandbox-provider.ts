import { randomUUID } from 'node:crypto';
import type { CaptureRequest, CaptureResult, PaymentProvider } from '../domain/payment-provider';

/** The sandbox's test cards, as payment sandboxes document them. */
export const SANDBOX_TOKENS = {
  tok_visa: { approved: true },
  tok_mastercard: { approved: true },
  tok_chargeDeclined: { approved: false, declineReason: 'card_declined' },
} as const;

interface Charge {
  orderId: string;
  providerRef: string;
  approved: boolean;
  declineReason?: string;
  amountCents: number;
  refunded: boolean;
}

/**
 * A provider that moves no money: the token decides the outcome. It behaves like a real PSP where
 * it matters to the saga: a capture is idempotent per orderId (the idempotency key), refunds only
 * apply to approved charges and never exceed the amount, and repeating a refund is a no-op.
 * State lives in memory, like a sandbox account that is reset on restart.
 */
export function createSandboxProvider() {
  const byOrder = new Map<string, Charge>();
  const byRef = new Map<string, Charge>();

  const provider = {
    name: 'sandbox',
    async capture({ orderId, amountCents, token }: CaptureRequest): Promise<CaptureResult> {
      const previous = byOrder.get(orderId);
      if (previous) return resultOf(previous);
      const card: { approved: boolean; declineReason?: string } = (SANDBOX_TOKENS as Record<string, { approved: boolean; declineReason?: string }>)[token] ?? {
        approved: false,
        declineReason: 'invalid_token',
      };
      const charge: Charge = { orderId, providerRef: `sbx_ch_${randomUUID()}`, ...card, amountCents, refunded: false };
      byOrder.set(orderId, charge);
      byRef.set(charge.providerRef, charge);
      return resultOf(charge);
    },

    async refund(providerRef: string, amountCents: number): Promise<void> {
      const charge = byRef.get(providerRef);
      if (!charge || !charge.approved) throw new Error(`sandbox: no captured charge ${providerRef}`);
      if (amountCents > charge.amountCents) throw new Error(`sandbox: refund of ${amountCents} exceeds the charge of ${charge.amountCents}`);
      charge.refunded = true;
    },

    /** Approved charges made for an order (0 or 1), what a PSP dashboard would show. */
    capturedCount(orderId: string): number {
      return byOrder.get(orderId)?.approved ? 1 : 0;
    },

    isRefunded(providerRef: string): boolean {
      return byRef.get(providerRef)?.refunded ?? false;
    },
  } satisfies PaymentProvider & Record<string, unknown>;
  return provider;
}

const resultOf = (charge: Charge): CaptureResult =>
  charge.approved ? { approved: true, providerRef: charge.providerRef } : { approved: false, providerRef: charge.providerRef, declineReason: charge.declineReason };

export type SandboxProvider = ReturnType<typeof createSandboxProvider>;
