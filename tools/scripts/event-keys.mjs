// A fresh set of event-signing keys for a platform that runs with NODE_ENV=production outside
// Kubernetes (compose, the benchmarks): each service's Ed25519 private key and the bundle of public
// keys every consumer verifies with, in the formats of libs/events (EVENT_SIGNING_KEY: base64 DER
// PKCS#8; EVENT_VERIFY_KEYS: service=<base64 DER SPKI>,…). libs/events' generateEventKeySet() is the
// same for TypeScript callers; this copy is for the plain Node scripts that cannot import it.
import { generateKeyPairSync } from 'node:crypto';

export const SIGNING_SERVICES = ['user-service', 'product-service', 'order-service', 'inventory-service', 'payment-service', 'event-bus'];

/** @returns {{ verifyKeys: string, signingKeys: Record<string, string> }} */
export function eventKeySet(services = SIGNING_SERVICES) {
  const pairs = services.map((service) => [service, generateKeyPairSync('ed25519')]);
  const der = (key, type) => key.export({ format: 'der', type }).toString('base64');
  return {
    verifyKeys: pairs.map(([service, pair]) => `${service}=${der(pair.publicKey, 'spki')}`).join(','),
    signingKeys: Object.fromEntries(pairs.map(([service, pair]) => [service, der(pair.privateKey, 'pkcs8')])),
  };
}
