import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { createIssuer, generateSigningKeyPair } from '@cloudretail/auth';
import { generateEventKeySet } from '@cloudretail/events';
import { build, createTestDatabase, freePort } from '@cloudretail/testing';
import {
  DEFAULT_THRESHOLDS,
  type Figures,
  type Thresholds,
  type Verdict,
  countersFrom,
  figuresBetween,
  judge,
  parsePrometheusText,
  percentile,
  sumCounters,
} from '../../deploy/src/verify';
import { buildPreviousUserService, ensureBuild, removeBuild } from './builds';
import { type ContainerGroup, startContainer, stopContainer } from './containers';
import { type Load, type LoadRequest, type RequestResult, failed, startLoad, within } from './load';
import { type Nginx, startNginx } from './nginx';
import { type ProcessGroup, type Replica, probe, sleep, startReplica, stopReplica } from './processes';

export interface ScenarioResult {
  scenario: string;
  requests: number;
  /** Non-2xx answers plus requests that got no answer at all. */
  failures: number;
  /** Failures by status code or connection error, e.g. { "500": 12, "ECONNRESET": 1 }. */
  failuresByKind: Record<string, number>;
  /** Client-side p99 over the whole run (ms). */
  p99Ms: number;
  /** Client-side p99 of the requests sent while the upstream list was changing (ms); null when nothing switched. */
  p99DuringSwitchMs: number | null;
  /** Blue-green: from the switch to green until traffic was back on blue (ms). */
  rollbackMs?: number;
  /** Blue-green: from the switch until the watch judged green bad (ms). */
  detectionMs?: number;
  /** Blue-green: failures seen by clients between the switch and the switch back. */
  episodeFailures?: number;
  switched?: boolean;
  rolledBack?: boolean;
  /** The verification verdicts taken on the way (pre-switch, watch). */
  verdicts?: { stage: string; figures?: Figures; verdict: Verdict }[];
  notes: string[];
}

export interface ScenarioContext {
  group: ProcessGroup;
  log?: (line: string) => void;
}

const r1 = (n: number) => Math.round(n * 10) / 10;
const ms = (n: number) => `${Math.round(n)} ms`;

/**
 * Production services sign the events they publish (Ed25519) and verify every producer's: key
 * pairs of this run for all producers, and the private key of `app`.
 */
function eventKeys(app: string): Record<string, string> {
  const { verifyKeys, signingKeys } = generateEventKeySet([app]);
  return { EVENT_VERIFY_KEYS: verifyKeys, EVENT_SIGNING_KEY: signingKeys[app] };
}

/** The RS256 key pair that signs (user-service) and verifies (every service) the tokens of one run. */
type JwtKeys = ReturnType<typeof generateSigningKeyPair>;

/**
 * Settings shared by every replica of `app`: a fresh database, Redis names of their own, quiet logs,
 * the token keys of this run (user-service signs with the private key, the others verify with the
 * public one, pinned) and event keys.
 */
function serviceEnv(app: string, databaseUrl: string, jwtKeys: JwtKeys, overrides: Record<string, string>): Record<string, string> {
  return {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    ...(app === 'user-service' ? { JWT_PRIVATE_KEY: jwtKeys.privateKey } : { JWT_PUBLIC_KEY: jwtKeys.publicKey }),
    EVENT_TOPIC_PREFIX: `zd-${randomUUID().slice(0, 8)}.`,
    EVENT_STREAM_MAXLEN: '1000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...eventKeys(app),
    ...overrides,
  };
}

function summarize(scenario: string, results: RequestResult[], windows: [number, number][], notes: string[]): ScenarioResult {
  const failures = results.filter(failed);
  const failuresByKind: Record<string, number> = {};
  for (const f of failures) failuresByKind[f.error ?? String(f.status)] = (failuresByKind[f.error ?? String(f.status)] ?? 0) + 1;
  const during = within(results, windows);
  return {
    scenario,
    requests: results.length,
    failures: failures.length,
    failuresByKind,
    p99Ms: r1(percentile(results.map((r) => r.ms), 0.99)),
    p99DuringSwitchMs: during.length ? r1(percentile(during.map((r) => r.ms), 0.99)) : null,
    notes,
  };
}

/** For `.catch()`: undo what was set up so far, then fail as before. */
const cleanUpAfter = (undo: () => void) => (error: unknown): never => {
  undo();
  throw error;
};

/** A fleet of one app's replicas, each on a free port. */
function fleet(ctx: ScenarioContext, main: string, env: Record<string, string>) {
  return async (name: string, extra: Record<string, string> = {}): Promise<Replica> => {
    const replica = await startReplica(ctx.group, { name, main, port: await freePort(), env: { ...env, ...extra } });
    ctx.log?.(`  started ${name} on :${replica.port}`);
    return replica;
  };
}

/** The first replica migrates the fresh database; the others start together once it has. */
async function startFleet<R>(start: (name: string) => Promise<R>, prefix: string, count: number): Promise<R[]> {
  const first = await start(`${prefix}-0`);
  return [first, ...(await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(`${prefix}-${i + 1}`))))];
}

async function seedProducts(baseUrl: string, jwtKeys: JwtKeys, count: number): Promise<string[]> {
  // An admin token as user-service would issue it.
  const token = createIssuer({ privateKey: jwtKeys.privateKey }).sign({ userId: randomUUID(), role: 'admin' });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${baseUrl}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(build.product()),
    });
    if (res.status !== 201) throw new Error(`seeding a product failed: ${res.status} ${await res.text()}`);
    ids.push(((await res.json()) as { id: string }).id);
  }
  return ids;
}

export interface LoadSettings {
  connections?: number;
  ratePerSecond?: number;
}

export interface RollingOptions {
  replicas?: number;
  rollouts?: number;
  shutdownDelayMs?: number;
  settleMs?: number;
  clientKeepAlive?: boolean;
  load?: LoadSettings;
}

/** How one app's replicas run: `start` resolves once the replica is ready, `stop` once it has exited (with its exit code). */
interface Runtime<R extends { name: string; port: number }> {
  start: (name: string, env: Record<string, string>) => Promise<R>;
  stop: (replica: R) => Promise<number | string>;
}

/**
 * The rolling update, whatever runs the replicas: every replica, one at a time, is replaced — start
 * the new one → ready → add it to nginx → remove the old one from nginx → stop the old one, which
 * drains — while clients keep sending GET /products/:id through nginx.
 */
async function rollOut<R extends { name: string; port: number }>(
  ctx: ScenarioContext,
  label: string,
  runtime: Runtime<R>,
  { replicas = 2, rollouts = 3, shutdownDelayMs = 300, settleMs = 500, clientKeepAlive = false, load: loadSettings = {} }: RollingOptions,
): Promise<ScenarioResult> {
  const db = await createTestDatabase('zd_rolling');
  const jwtKeys = generateSigningKeyPair();
  const env = serviceEnv('product-service', db.url, jwtKeys, { SHUTDOWN_DELAY_MS: String(shutdownDelayMs) });
  const start = async (name: string) => {
    const replica = await runtime.start(name, env);
    ctx.log?.(`  started ${replica.name} on :${replica.port}`);
    return replica;
  };
  let nginx: Nginx | undefined;
  let load: Load | undefined;
  const notes: string[] = [];
  try {
    const live = await startFleet(start, 'v1', replicas);
    nginx = await startNginx(ctx.group, { port: await freePort(), upstreams: live.map((r) => r.port), clientKeepAlive });
    const ids = await seedProducts(nginx.url, jwtKeys, 5);
    load = startLoad({ baseUrl: nginx.url, request: (i) => ({ path: `/products/${ids[i % ids.length]}` }), connections: 8, ...loadSettings });
    await sleep(settleMs);

    const windows: [number, number][] = [];
    for (let rollout = 1; rollout <= rollouts; rollout++) {
      const t0 = performance.now();
      for (let i = 0; i < live.length; i++) {
        const old = live[i];
        const t = [performance.now()];
        const fresh = await start(`v${rollout + 1}-${i}`);
        t.push(performance.now());
        await nginx.setUpstreams([...live.map((r) => r.port), fresh.port]);
        live[i] = fresh;
        await nginx.setUpstreams(live.map((r) => r.port));
        t.push(performance.now());
        const code = await runtime.stop(old);
        t.push(performance.now());
        if (code !== 0) notes.push(`${old.name} exited with ${code}`);
        ctx.log?.(`  ${old.name} → ${fresh.name}: start ${ms(t[1] - t[0])}, 2 reloads ${ms(t[2] - t[1])}, drain and exit ${ms(t[3] - t[2])}`);
      }
      windows.push([t0, performance.now()]);
      ctx.log?.(`  rollout ${rollout}/${rollouts} done in ${Math.round(performance.now() - t0)} ms`);
    }
    await sleep(settleMs);
    const results = await load.stop();
    load = undefined;
    return summarize(`${label} (${rollouts} rollouts × ${replicas} replicas${clientKeepAlive ? ', client keep-alive' : ''})`, results, windows, notes);
  } finally {
    await load?.stop();
    await nginx?.stop();
    await ctx.group.killAll();
    await db.drop();
  }
}

/** Rolling update on real processes of a private copy of the build; SIGTERM plays the pod deletion. */
export async function rollingUpdate(ctx: ScenarioContext, options: RollingOptions = {}): Promise<ScenarioResult> {
  const main = await ensureBuild('product-service');
  try {
    return await rollOut(ctx, 'rolling update', { start: async (name, env) => startReplica(ctx.group, { name, main, port: await freePort(), env }), stop: stopReplica }, options);
  } finally {
    removeBuild(main);
  }
}

/**
 * Rolling update on containers of the product-service image: each replica is a `docker run` of the
 * image as its CMD; the old one is stopped with `docker stop` and must exit 0 (Docker's record).
 */
export async function rollingUpdateOnContainers(ctx: ScenarioContext & { containers: ContainerGroup; image: string }, options: RollingOptions = {}): Promise<ScenarioResult> {
  try {
    return await rollOut(
      ctx,
      'rolling update on containers',
      { start: async (name, env) => startContainer(ctx.containers, { name, image: ctx.image, port: await freePort(), env }), stop: (c) => stopContainer(c) },
      options,
    );
  } finally {
    await ctx.containers.removeAll();
  }
}

/** Sums the request counters of every replica's /metrics. */
async function scrape(replicas: Replica[]) {
  const bodies = await Promise.all(replicas.map(async (r) => (await fetch(`${r.url}/metrics`)).text()));
  return sumCounters(bodies.map((b) => countersFrom(parsePrometheusText(b))));
}

/** Probe traffic straight to the replicas (not through the load balancer), a few at a time. */
async function sendProbes(replicas: Replica[], paths: string[], count: number): Promise<void> {
  for (let i = 0; i < count; i += 4) {
    await Promise.all([0, 1, 2, 3].map((j) => probe(`${replicas[(i + j) % replicas.length].url}${paths[(i + j) % paths.length]}`)));
  }
}

export interface BlueGreenOptions {
  label: string;
  replicas?: number;
  /** Environment of the green release, e.g. { FAULT_ERROR_RATE: '0.3' } for a bad one. */
  greenEnv?: Record<string, string>;
  /**
   * Checks before the switch: `probe` = health + error ratio and p99 of probe traffic (from the
   * green replicas' /metrics); `health` = readiness only, as for a fault that only live traffic reveals.
   */
  preSwitch?: 'probe' | 'health';
  probeRequests?: number;
  /** How long the watch after the switch lasts, and how often it judges. */
  watchMs?: number;
  watchIntervalMs?: number;
  thresholds?: Thresholds;
  shutdownDelayMs?: number;
  settleMs?: number;
  load?: LoadSettings;
}

/**
 * Blue-green on real processes: blue serves behind nginx under load; green starts beside it and is
 * verified; nginx's upstream switches to green; a watch judges green's own /metrics (the same
 * verify logic as `deploy verify`) and switches back to blue as soon as green is judged bad.
 */
export async function blueGreen(ctx: ScenarioContext, options: BlueGreenOptions): Promise<ScenarioResult> {
  const {
    label,
    replicas = 2,
    greenEnv = {},
    preSwitch = 'probe',
    probeRequests = 60,
    watchMs = 3000,
    watchIntervalMs = 200,
    thresholds = DEFAULT_THRESHOLDS,
    shutdownDelayMs = 300,
    settleMs = 500,
    load: loadSettings = {},
  } = options;
  const main = await ensureBuild('product-service');
  const db = await createTestDatabase('zd_bluegreen').catch(cleanUpAfter(() => removeBuild(main)));
  const jwtKeys = generateSigningKeyPair();
  const start = fleet(ctx, main, serviceEnv('product-service', db.url, jwtKeys, { SHUTDOWN_DELAY_MS: String(shutdownDelayMs) }));
  let nginx: Nginx | undefined;
  let load: Load | undefined;
  const notes: string[] = [];
  const verdicts: NonNullable<ScenarioResult['verdicts']> = [];
  try {
    const blue = await startFleet(start, 'blue', replicas);
    nginx = await startNginx(ctx.group, { port: await freePort(), upstreams: blue.map((r) => r.port) });
    const ids = await seedProducts(nginx.url, jwtKeys, 5);
    const paths = ids.map((id) => `/products/${id}`);
    load = startLoad({ baseUrl: nginx.url, request: (i) => ({ path: paths[i % paths.length] }), connections: 8, ...loadSettings });
    await sleep(settleMs);

    // 1. Deploy green beside blue.
    const green = await Promise.all(Array.from({ length: replicas }, (_, i) => start(`green-${i}`, greenEnv)));

    // 2. Verify green before it gets traffic.
    const healthy = (await Promise.all(green.map((r) => probe(`${r.url}/health/ready`)))).every((p) => p.status === 200);
    let figures: Figures | undefined;
    if (preSwitch === 'probe') {
      const before = await scrape(green);
      await sendProbes(green, paths, probeRequests);
      figures = figuresBetween(before, await scrape(green));
    }
    const pre = judge({ healthy, figures }, thresholds);
    verdicts.push({ stage: 'pre-switch', figures, verdict: pre });
    const windows: [number, number][] = [];
    let result: Partial<ScenarioResult> = { switched: false, rolledBack: false };

    if (!pre.ok) {
      notes.push(`green rejected before the switch: ${pre.reasons.join(', ')}`);
      await Promise.all(green.map((r) => stopReplica(r)));
    } else {
      // 3. Switch, then watch green's own figures since the switch.
      const baseline = await scrape(green);
      const switchedAt = performance.now();
      await nginx.setUpstreams(green.map((r) => r.port));
      let bad: Verdict | undefined;
      let watched: Figures | undefined;
      while (performance.now() - switchedAt < watchMs) {
        await sleep(watchIntervalMs);
        watched = figuresBetween(baseline, await scrape(green));
        const verdict = judge({ figures: watched }, thresholds);
        if (verdict.conclusive && !verdict.ok) {
          bad = verdict;
          break;
        }
      }
      verdicts.push({ stage: 'watch', figures: watched, verdict: bad ?? judge({ figures: watched }, thresholds) });
      if (bad) {
        // 4a. Switch back: blue never stopped, so this is one reload.
        const detectedAt = performance.now();
        await nginx.setUpstreams(blue.map((r) => r.port));
        const backAt = performance.now();
        windows.push([switchedAt, backAt]);
        notes.push(`watch judged green bad (${bad.reasons.join(', ')}) and switched back to blue`);
        result = { switched: true, rolledBack: true, detectionMs: Math.round(detectedAt - switchedAt), rollbackMs: Math.round(backAt - switchedAt) };
        await sleep(settleMs);
        await Promise.all(green.map((r) => stopReplica(r)));
      } else {
        // 4b. Green holds: blue drains and goes.
        windows.push([switchedAt, performance.now()]);
        result = { switched: true, rolledBack: false };
        const codes = await Promise.all(blue.map((r) => stopReplica(r)));
        if (codes.some((c) => c !== 0)) notes.push(`blue exit codes: ${codes.join(', ')}`);
      }
    }
    await sleep(settleMs);
    const results = await load.stop();
    load = undefined;
    const summary = summarize(`blue-green: ${label}`, results, windows, notes);
    // Requests answered by the bad green: sent after the switch, before traffic was back on blue
    // (plus the in-flight ones, which finish within the request timeout).
    if (result.rolledBack) summary.episodeFailures = within(results, windows).filter(failed).length;
    return { ...summary, ...result, verdicts };
  } finally {
    await load?.stop();
    await nginx?.stop();
    await ctx.group.killAll();
    await db.drop();
    removeBuild(main);
  }
}

const execFileAsync = promisify(execFile);

/**
 * Expand-only schema change under load: the previous user-service (knows migrations up to 001)
 * serves GET and PATCH /users/me behind nginx; migration 002 is applied by the new build's
 * `node main.js migrate up` while it serves; then the new version joins it behind nginx (old and
 * new side by side on the migrated schema) and finally replaces it.
 */
export async function schemaChange(
  ctx: ScenarioContext,
  { replicas = 2, users = 6, sideBySideMs = 2000, shutdownDelayMs = 300, settleMs = 500, load: loadSettings = {} }: { replicas?: number; users?: number; sideBySideMs?: number; shutdownDelayMs?: number; settleMs?: number; load?: LoadSettings } = {},
): Promise<ScenarioResult> {
  const [previousMain, nextMain] = await Promise.all([buildPreviousUserService(), ensureBuild('user-service')]);
  const db = await createTestDatabase('zd_schema').catch(cleanUpAfter(() => [previousMain, nextMain].forEach(removeBuild)));
  const jwtKeys = generateSigningKeyPair();
  const env = serviceEnv('user-service', db.url, jwtKeys, {
    SHUTDOWN_DELAY_MS: String(shutdownDelayMs),
    // As in Kubernetes: migrations are a separate step (init container / Job), never at start-up.
    MIGRATE_ON_START: 'false',
    PASSWORD_HASH_COST: '14',
    LOGIN_THROTTLE_KEY_PREFIX: `zd:login:${randomUUID()}`,
  });
  const migrateUp = async (main: string) => {
    const { stdout, stderr } = await execFileAsync(process.execPath, [main, 'migrate', 'up'], { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 });
    return `${stdout}${stderr}`;
  };
  const startOld = fleet(ctx, previousMain, env);
  const startNew = fleet(ctx, nextMain, env);
  let nginx: Nginx | undefined;
  let load: Load | undefined;
  const notes: string[] = [];
  try {
    await migrateUp(previousMain); // the previous release's schema: up to 001-create-users
    const old = await Promise.all(Array.from({ length: replicas }, (_, i) => startOld(`previous-${i}`)));
    nginx = await startNginx(ctx.group, { port: await freePort(), upstreams: old.map((r) => r.port) });

    const tokens: string[] = [];
    for (let i = 0; i < users; i++) {
      const res = await fetch(`${nginx.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(build.user()) });
      if (res.status !== 201) throw new Error(`registering a user failed: ${res.status} ${await res.text()}`);
      tokens.push(((await res.json()) as { token: string }).token);
    }
    // Mostly reads, every tenth request a write (PATCH is not idempotent: nginx never retries it).
    const request = (i: number): LoadRequest => {
      const headers = { authorization: `Bearer ${tokens[i % tokens.length]}` };
      return i % 10 === 9 ? { method: 'PATCH', path: '/users/me', headers, body: { name: `Name ${i}` } } : { path: '/users/me', headers };
    };
    load = startLoad({ baseUrl: nginx.url, request, connections: 8, ...loadSettings });
    await sleep(settleMs);

    // 1. Migration 002 while the previous version serves.
    const windows: [number, number][] = [];
    let t0 = performance.now();
    await migrateUp(nextMain);
    windows.push([t0, performance.now()]);
    const { stdout: status } = await execFileAsync(process.execPath, [nextMain, 'migrate', 'status'], { env: { PATH: process.env.PATH, ...env } });
    notes.push(`applied 002 under load in ${Math.round(performance.now() - t0)} ms`);
    ctx.log?.(`  migrate status: ${status.trim().split('\n').slice(-1)[0]}`);
    await sleep(settleMs);

    // 2. The new version beside the old one, on the migrated schema.
    t0 = performance.now();
    const fresh = await Promise.all(Array.from({ length: replicas }, (_, i) => startNew(`next-${i}`)));
    await nginx.setUpstreams([...old, ...fresh].map((r) => r.port));
    windows.push([t0, performance.now()]);
    await sleep(sideBySideMs);

    // The new version reads the column the old one never knew.
    const me = await fetch(`${fresh[0].url}/users/me`, { headers: { authorization: `Bearer ${tokens[0]}` } });
    const body = (await me.json()) as { preferences?: unknown };
    if (me.status !== 200 || JSON.stringify(body.preferences) !== '{}') notes.push(`new version read ${me.status} ${JSON.stringify(body)}`);

    // 3. Finish the rollout: the old version leaves.
    t0 = performance.now();
    await nginx.setUpstreams(fresh.map((r) => r.port));
    const codes = await Promise.all(old.map((r) => stopReplica(r)));
    if (codes.some((c) => c !== 0)) notes.push(`previous version exit codes: ${codes.join(', ')}`);
    windows.push([t0, performance.now()]);
    await sleep(settleMs);
    const results = await load.stop();
    load = undefined;
    return summarize('schema change (user-service 001 → 002, old + new side by side)', results, windows, notes);
  } finally {
    await load?.stop();
    await nginx?.stop();
    await ctx.group.killAll();
    await db.drop();
    removeBuild(previousMain);
    removeBuild(nextMain);
  }
}
