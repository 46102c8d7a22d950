/**
 * `npm run demo [-- <gateway URL>]`: a customer's journey against a running platform (default
 * http://localhost:8080): register → browse → order → live status (SSE) → admin refund, narrated.
 * Exits 1 on the first unexpected answer. The admin is ADMIN_EMAIL / ADMIN_PASSWORD (npm start's defaults).
 */
import { cloudRetailClient } from '../client/src/client';
import { customerJourney } from '../client/src/flow';

async function main(): Promise<void> {
  const baseUrl = process.argv[2] ?? process.env.CLOUDRETAIL_URL ?? 'http://localhost:8080';
  const admin = { email: process.env.ADMIN_EMAIL ?? 'admin@cloudretail.local', password: process.env.ADMIN_PASSWORD ?? 'change-me-admin' };
  const started = Date.now();
  console.log(`CloudRetail demo against ${baseUrl}`);
  const health = await fetch(new URL('/api/products?limit=1', baseUrl)).catch((error: Error) => error);
  if (health instanceof Error) throw new Error(`nothing answers at ${baseUrl} (${health.message}); start the platform with \`npm start\``);
  const result = await customerJourney({ client: cloudRetailClient(baseUrl), baseUrl, admin, log: (line) => console.log(`· ${line}`) });
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s: order ${result.orderId} went ${result.statuses.join(' → ')}`);
}

main().catch((error: Error) => {
  console.error(`demo failed: ${error.message}`);
  process.exit(1);
});
