import { createAuth, createIssuer, createRevocations, generateSigningKeyPair } from '@cloudretail/auth';
import { createApp, finishApp } from '@cloudretail/http';
import { type ServiceDefinition, runMain, startService } from '@cloudretail/runtime';
import { configSchema } from './config';
import { loginThrottle } from './data-access/login-throttle';
import { migrations } from './data-access/migrations';
import { userRepository } from './data-access/user-repository';
import { passwordHasher } from './domain/password';
import { userUseCases } from './domain/user-use-cases';
import { userApi } from './entry-points/api/routes';

export const service: ServiceDefinition<typeof configSchema> = {
  name: 'user-service',
  schema: configSchema,
  migrations,
  async setup({ config, logger, metrics, db, redis, faults }) {
    let privateKey = config.JWT_PRIVATE_KEY;
    if (!privateKey) {
      // Development only (config refuses production without a key): tokens die with this process.
      privateKey = generateSigningKeyPair().privateKey;
      logger.warn('JWT_PRIVATE_KEY is not set: signing with a key pair generated at start-up (verifiers fetch it from /.well-known/jwks.json)');
    }
    const issuer = createIssuer({
      privateKey,
      previousPublicKeys: config.JWT_PREVIOUS_PUBLIC_KEY ? [config.JWT_PREVIOUS_PUBLIC_KEY] : [],
      expiresInSeconds: config.JWT_EXPIRES_IN_SECONDS,
    });
    const revocations = createRevocations(redis, {
      prefix: config.JWT_REVOCATION_KEY_PREFIX,
      cacheMs: config.JWT_REVOCATION_CACHE_MS,
      onError: (err) => logger.warn({ err }, 'token revocation check skipped: Redis unreachable'),
    });
    const auth = createAuth({ keys: issuer.keys, revocations });
    const useCases = userUseCases({
      db,
      users: userRepository(db),
      hasher: passwordHasher({ logN: config.PASSWORD_HASH_COST, r: 8, p: 1 }),
      throttle: loginThrottle(redis, {
        maxPerAccount: config.LOGIN_MAX_FAILURES_PER_ACCOUNT,
        maxPerIp: config.LOGIN_MAX_FAILURES_PER_IP,
        windowSeconds: config.LOGIN_THROTTLE_WINDOW_SECONDS,
        keyPrefix: config.LOGIN_THROTTLE_KEY_PREFIX,
        knownClientSeconds: config.LOGIN_KNOWN_CLIENT_DAYS * 86_400,
        maxKnownClients: 20,
      }),
      issuer,
      revocations,
      logger,
    });
    if (config.ADMIN_EMAIL && config.ADMIN_PASSWORD) {
      const outcome = await useCases.ensureAdmin(config.ADMIN_EMAIL, config.ADMIN_PASSWORD);
      logger.info({ outcome }, outcome === 'created' ? 'admin account created' : 'admin account already exists');
    }
    const app = createApp({ logger, metrics, faults });
    // req.ip is the client the gateway names in X-Forwarded-For, believed only from TRUST_PROXY peers.
    app.set('trust proxy', config.TRUST_PROXY);
    app.get('/.well-known/jwks.json', (_req, res) => res.set('cache-control', 'public, max-age=300').json(issuer.jwks()));
    userApi(useCases, auth).mount(app);
    return { app: finishApp(app) };
  },
};

/** Starts the service (tests pass their own environment and port 0). */
export const start = (env: NodeJS.ProcessEnv = process.env) => startService(service, env);

if (require.main === module) runMain(service);
