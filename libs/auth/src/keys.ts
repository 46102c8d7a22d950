import { type JsonWebKey, type KeyObject, createHash, createPrivateKey, createPublicKey } from 'node:crypto';

/** The one signing algorithm: verifiers accept nothing else, so HS256 and `alg: none` fail. */
export const ALGORITHM = 'RS256';

/** A public key as served in a JWKS. */
export type PublicJwk = JsonWebKey & { kid: string; kty: string; alg: string; use: string };

/** PEM from an environment variable; `\n` escapes (one-line env files) become newlines. */
export const pem = (text: string) => text.replace(/\\n/g, '\n').trim();

/** RFC 7638 thumbprint: a `kid` every replica derives alike from the key itself, no config. */
export function keyId(key: KeyObject): string {
  const { e, kty, n } = key.export({ format: 'jwk' });
  return createHash('sha256').update(JSON.stringify({ e, kty, n })).digest('base64url');
}

export function toJwk(key: KeyObject): PublicJwk {
  return { ...key.export({ format: 'jwk' }), kid: keyId(key), alg: ALGORITHM, use: 'sig' } as PublicJwk;
}

/** Parses a PEM RSA public key (or the public half of a private one); anything else throws. */
export function publicKeyOf(text: string): KeyObject {
  const key = createPublicKey(pem(text));
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`expected an RSA key, got ${key.asymmetricKeyType}`);
  return key;
}

export function privateKeyOf(text: string): KeyObject {
  const key = createPrivateKey(pem(text));
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`expected an RSA key, got ${key.asymmetricKeyType}`);
  return key;
}

/** Where a verifier finds the public key for a token's `kid`. */
export interface KeySource {
  /** The key for `kid` among those already known (synchronous: the gateway's hot path). */
  get(kid: string | undefined): KeyObject | undefined;
  /** The key for `kid`, fetching the key set first when it is unknown (bounded, see remoteKeys). */
  resolve(kid: string | undefined): Promise<KeyObject | undefined>;
  /** Starts a fetch when the source is remote and due; never throws. */
  warm(): void;
}

/** Fixed public keys (JWT_PUBLIC_KEY, or the issuer's own). A token without `kid` matches a single key. */
export function staticKeys(keys: KeyObject[]): KeySource {
  const byKid = new Map(keys.map((k) => [keyId(k), k]));
  const get = (kid: string | undefined) => (kid === undefined ? (keys.length === 1 ? keys[0] : undefined) : byKid.get(kid));
  return { get, resolve: async (kid) => get(kid), warm: () => undefined };
}

export interface RemoteKeysOptions {
  url: string;
  /** Fewest milliseconds between two fetches, however many unknown `kid`s arrive. */
  minIntervalMs?: number;
  /** A key set older than this is refetched in the background (so a removed key stops working). */
  maxAgeMs?: number;
  timeoutMs?: number;
  onError?: (error: unknown) => void;
}

/**
 * A JWKS fetched from `url` and kept in memory. It is fetched again when a token names an unknown
 * `kid` (key rotation, a restarted development issuer) or the set is older than `maxAgeMs`, at most
 * once per `minIntervalMs` and one fetch at a time, so forged `kid`s cannot make it hammer the
 * issuer. node:crypto imports JWKs itself; the synchronous `get` is why no JWKS client library is
 * used (theirs are asynchronous even on a cache hit).
 */
export function remoteKeys({ url, minIntervalMs = 2_000, maxAgeMs = 5 * 60_000, timeoutMs = 3_000, onError }: RemoteKeysOptions): KeySource {
  let keys = new Map<string, KeyObject>();
  let fetchedAt = 0;
  let attemptedAt = -Infinity;
  let inFlight: Promise<void> | undefined;

  async function load(): Promise<void> {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`JWKS ${url} answered ${res.status}`);
    const body = (await res.json()) as { keys?: PublicJwk[] };
    const next = new Map<string, KeyObject>();
    for (const jwk of body.keys ?? []) {
      if (jwk.kty !== 'RSA' || typeof jwk.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
      next.set(jwk.kid, createPublicKey({ key: jwk, format: 'jwk' }));
    }
    keys = next;
    fetchedAt = Date.now();
  }

  function refresh(): Promise<void> {
    if (inFlight) return inFlight;
    if (Date.now() - attemptedAt < minIntervalMs) return Promise.resolve();
    attemptedAt = Date.now();
    inFlight = load()
      .catch((error) => onError?.(error))
      .finally(() => (inFlight = undefined));
    return inFlight;
  }

  const get = (kid: string | undefined) => {
    const key = kid === undefined ? undefined : keys.get(kid);
    if (!key || Date.now() - fetchedAt > maxAgeMs) void refresh();
    return key;
  };
  return {
    get,
    async resolve(kid) {
      const known = get(kid);
      if (known || kid === undefined) return known;
      await refresh();
      return keys.get(kid);
    },
    warm: () => void refresh(),
  };
}
