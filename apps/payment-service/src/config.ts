import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, port, z } from '@cloudretail/config';

export const configSchema = z.object({
  ...dataServiceBase,
  ...eventsConfig,
  PORT: port(3005).describe('HTTP port'),
  DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_payments'),
  // One adapter today; a real PSP is another value here and another PaymentProvider implementation.
  PAYMENT_PROVIDER: z.enum(['sandbox']).default('sandbox').describe('Payment provider adapter: `sandbox` (test card tokens, no money moves)'),
});

export type Config = z.infer<typeof configSchema>;
