/**
 * The port to a payment service provider (PSP). The saga depends only on this interface, so a real
 * PSP is plugged in as another adapter selected by PAYMENT_PROVIDER.
 */
export interface CaptureRequest {
  /** Also the idempotency key at the provider: capturing the same order again returns the first result, never a second charge. */
  orderId: string;
  amountCents: number;
  currency: string;
  /** A tokenised card (the client never sends card numbers here). */
  token: string;
}

export interface CaptureResult {
  approved: boolean;
  /** The provider's id of the charge (or of the declined attempt); refunds name it. */
  providerRef: string;
  declineReason?: string;
}

export interface PaymentProvider {
  readonly name: string;
  capture(request: CaptureRequest): Promise<CaptureResult>;
  /**
   * Refunds a captured charge. `idempotencyKey` names the refund at the provider: the same key
   * again returns the first refund (never a second one), whichever replica asks.
   */
  refund(providerRef: string, amountCents: number, idempotencyKey: string): Promise<void>;
}
