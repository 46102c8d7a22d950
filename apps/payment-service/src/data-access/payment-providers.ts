import type { Db } from '@cloudretail/db';
import type { PaymentProvider } from '../domain/payment-provider';
import { createSandboxProvider } from './sandbox-provider';

/** The adapter PAYMENT_PROVIDER names; an unknown name never gets this far (the config enum rejects it). */
export function createPaymentProvider(name: 'sandbox', { sandboxDb }: { sandboxDb: Db }): PaymentProvider {
  switch (name) {
    case 'sandbox':
      return createSandboxProvider(sandboxDb);
  }
}
