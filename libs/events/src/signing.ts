import { type KeyObject, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { ConfigError } from '@cloudretail/config';
import { type EventType, catalog } from './catalog';
import type { EventEnvelope } from './envelope';

/**
 * Which service produces each event family (catalog topic). A consumer accepts an event only when
 * it is signed by the producer of its type, so a service (or anyone with broker access) cannot
 * put words in another's mouth: a `PaymentCaptured` is believed only when payment-service signed it.
 */
export const PRODUCERS = {
  catalog: 'product-service',
  inventory: 'inventory-service',
  users: 'user-service',
  orders: 'order-service',
  payments: 'payment-service',
} as const satisfies Record<(typeof catalog)[EventType]['topic'], string>;

export const producerOf = (type: EventType): string => PRODUCERS[catalog[type].topic];

/** An event that is not what it claims to be: unsigned, forged, tampered with, or from the wrong service. */
export class UnauthenticEventError extends Error {
  override name = 'UnauthenticEventError';
}

export interface EventSigning {
  /** Adds `producer` and `signature` to an envelope; throws when this process may not publish `type`. */
  sign(event: EventEnvelope): EventEnvelope;
  /** Throws {@link UnauthenticEventError} unless the raw envelope is signed by the producer of its type. */
  verify(raw: Record<string, unknown>): void;
}

export interface SigningOptions {
  /** This service's Ed25519 private key: PEM (PKCS#8) or base64 DER (PKCS#8). */
  signingKey?: string;
  /** `service=<base64 DER SPKI>,…`: every producer's public key. */
  verifyKeys?: string;
  /** Without keys outside production: the seed every service's development key pair is derived from. */
  devSeed?: string;
  production?: boolean;
}

/** Canonical bytes of an envelope: keys sorted at every level, `signature` left out, so a JSON(B) round trip keeps them. */
export function canonicalBytes(envelope: object): Buffer {
  const sorted = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(sorted)
      : value && typeof value === 'object'
        ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted((value as Record<string, unknown>)[k])]))
        : value;
  const { signature: _signature, ...signed } = envelope as Record<string, unknown>;
  return Buffer.from(JSON.stringify(sorted(signed)));
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A development key pair, derived from `seed` and the service name: the same in every process of one run. */
export function devKeyPair(seed: string, service: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const raw = createHash('sha256').update(`${seed}:${service}`).digest();
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** `service=<base64 SPKI>` pairs for the given public keys: the EVENT_VERIFY_KEYS format. */
export const formatVerifyKeys = (keys: Record<string, KeyObject>) =>
  Object.entries(keys)
    .map(([service, key]) => `${service}=${key.export({ format: 'der', type: 'spki' }).toString('base64')}`)
    .join(',');

/**
 * A fresh key set for a platform (tools that start one: bench, drills, a compose .env): the
 * EVENT_VERIFY_KEYS bundle and each service's EVENT_SIGNING_KEY (base64 DER PKCS#8). Pass extra
 * services that must start in production without producing events (event-bus).
 */
export function generateEventKeySet(services: string[] = Object.values(PRODUCERS)): { verifyKeys: string; signingKeys: Record<string, string> } {
  const pairs = Object.fromEntries([...new Set([...Object.values(PRODUCERS), ...services])].map((service) => [service, generateKeyPairSync('ed25519')]));
  return {
    verifyKeys: formatVerifyKeys(Object.fromEntries(Object.entries(pairs).map(([service, pair]) => [service, pair.publicKey]))),
    signingKeys: Object.fromEntries(Object.entries(pairs).map(([service, pair]) => [service, pair.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')])),
  };
}

const spki = (key: KeyObject) => key.export({ format: 'der', type: 'spki' }).toString('base64');

function parseVerifyKeys(value: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const entry of value.split(',').map((e) => e.trim()).filter(Boolean)) {
    const at = entry.indexOf('=');
    const [service, key] = [entry.slice(0, at).trim(), entry.slice(at + 1).trim()];
    try {
      if (at <= 0) throw new Error('no service name');
      const publicKey = createPublicKey({ key: Buffer.from(key, 'base64'), format: 'der', type: 'spki' });
      if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error('not Ed25519');
      keys.set(service, publicKey);
    } catch (error) {
      throw new ConfigError([{ variable: 'EVENT_VERIFY_KEYS', message: `entry "${entry.slice(0, 40)}" is not service=<base64 DER SPKI Ed25519 key> (${(error as Error).message})` }]);
    }
  }
  return keys;
}

function parsePrivateKey(value: string): KeyObject {
  try {
    const key = value.includes('-----BEGIN') ? createPrivateKey(value.replace(/\\n/g, '\n')) : createPrivateKey({ key: Buffer.from(value, 'base64'), format: 'der', type: 'pkcs8' });
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('not Ed25519');
    return key;
  } catch (error) {
    throw new ConfigError([{ variable: 'EVENT_SIGNING_KEY', message: `must be an Ed25519 private key, PEM or base64 DER PKCS#8 (${(error as Error).message})` }]);
  }
}

/**
 * Event authentication (Ed25519). With keys (`EVENT_VERIFY_KEYS`, and `EVENT_SIGNING_KEY` in a
 * service that publishes) a process signs as the one service whose public key matches its private
 * key. Without keys, outside production only, every producer's key pair is derived from
 * `devSeed`, and each event is signed by the producer of its type, so development and tests need
 * no hand-made keys while consumers still verify exactly as in production.
 */
export function createEventSigning({ signingKey, verifyKeys, devSeed = 'cloudretail-dev', production = false }: SigningOptions = {}): EventSigning {
  let keys: Map<string, KeyObject>;
  let signerFor: (type: EventType) => { service: string; key: KeyObject };
  if (verifyKeys === undefined && signingKey === undefined) {
    if (production) {
      throw new ConfigError([
        { variable: 'EVENT_VERIFY_KEYS', message: 'is required when NODE_ENV=production (service=<base64 SPKI>,… for every producer)' },
        { variable: 'EVENT_SIGNING_KEY', message: "is required when NODE_ENV=production (this service's Ed25519 private key)" },
      ]);
    }
    const pairs = new Map<string, ReturnType<typeof devKeyPair>>(Object.values(PRODUCERS).map((service) => [service, devKeyPair(devSeed, service)]));
    keys = new Map([...pairs].map(([service, pair]) => [service, pair.publicKey]));
    signerFor = (type) => {
      const service = producerOf(type);
      return { service, key: pairs.get(service)!.privateKey };
    };
  } else {
    if (verifyKeys === undefined) throw new ConfigError([{ variable: 'EVENT_VERIFY_KEYS', message: 'is required when EVENT_SIGNING_KEY is set' }]);
    keys = parseVerifyKeys(verifyKeys);
    const missing = Object.values(PRODUCERS).filter((service: string) => !keys.has(service));
    if (missing.length) throw new ConfigError([{ variable: 'EVENT_VERIFY_KEYS', message: `has no key for ${missing.join(', ')}` }]);
    if (signingKey === undefined && production) throw new ConfigError([{ variable: 'EVENT_SIGNING_KEY', message: "is required when NODE_ENV=production (this service's Ed25519 private key)" }]);
    const own = signingKey === undefined ? undefined : parsePrivateKey(signingKey);
    // Who we are is the entry of the bundle our key belongs to: no separate name to get wrong.
    const self = own && [...keys].find(([, key]) => spki(key) === spki(createPublicKey(own)))?.[0];
    if (own && !self) throw new ConfigError([{ variable: 'EVENT_SIGNING_KEY', message: 'its public key is not in EVENT_VERIFY_KEYS' }]);
    signerFor = (type) => {
      if (!own || !self) throw new Error('EVENT_SIGNING_KEY is not set: this process cannot publish events');
      if (producerOf(type) !== self) throw new Error(`${self} cannot publish ${type}: the catalog names ${producerOf(type)} as its producer`);
      return { service: self, key: own };
    };
  }

  return {
    sign(event) {
      const { service, key } = signerFor(event.type as EventType);
      const unsigned = { ...event, producer: service } as EventEnvelope & Record<string, unknown>;
      delete unsigned.signature;
      return { ...unsigned, signature: sign(null, canonicalBytes(unsigned), key).toString('base64') } as EventEnvelope;
    },
    verify(raw) {
      const type = raw.type as EventType;
      const expected = producerOf(type);
      if (raw.producer !== expected) throw new UnauthenticEventError(`${type} is produced by ${expected}; this one claims ${typeof raw.producer === 'string' ? raw.producer : 'no producer'}`);
      if (typeof raw.signature !== 'string') throw new UnauthenticEventError(`${type} is not signed`);
      const key = keys.get(expected)!;
      if (!verify(null, canonicalBytes(raw), key, Buffer.from(raw.signature, 'base64'))) throw new UnauthenticEventError(`${type}: signature does not match ${expected}'s key`);
    },
  };
}
