import { parseArgs } from 'node:util';
import { type Thresholds, DEFAULT_THRESHOLDS, parseDuration } from './verify';

export const COMMANDS = ['rolling', 'blue-green', 'verify', 'rollback', 'rollout', 'promote', 'compare'] as const;
export type Command = (typeof COMMANDS)[number];
/** `rollout <action>`: drives an Argo Rollout, or a Deployment where no Rollout manages the app. */
export const ROLLOUT_ACTIONS = ['status', 'promote', 'abort', 'pause', 'resume', 'undo', 'history'] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

/**
 * Deployed environments as infrastructure/kubernetes/overlays and infrastructure/argocd define
 * them: the namespace, the overlay `promote` writes, and the Git branch Argo CD syncs it from.
 * `production` (no region) is accepted by the kubectl commands (the kube context picks the
 * region) but not by `promote`, which always names one region.
 */
export const ENVIRONMENTS = {
  staging: { namespace: 'cloudretail-staging', overlay: 'infrastructure/kubernetes/overlays/staging' },
  'production-eu-west': { namespace: 'cloudretail', overlay: 'infrastructure/kubernetes/overlays/production/eu-west' },
  'production-us-east': { namespace: 'cloudretail', overlay: 'infrastructure/kubernetes/overlays/production/us-east' },
  production: { namespace: 'cloudretail', overlay: undefined },
} as const;
export type Environment = keyof typeof ENVIRONMENTS;
/** Kept for callers that only need the namespace. */
export const NAMESPACES = Object.fromEntries(Object.entries(ENVIRONMENTS).map(([env, e]) => [env, e.namespace])) as Record<Environment, string>;
/** The branch Argo CD syncs an environment from (infrastructure/argocd); only `promote` writes it. */
export const envBranch = (env: Environment) => `env/${env}`;

export const DEFAULT_REGISTRY = 'ghcr.io/cloudretail';

export interface Options {
  command: Command;
  action?: RolloutAction;
  env: Environment;
  namespace: string;
  /** The apps the command runs for, in order (one audit record each). */
  apps: string[];
  /** First of `apps` (most commands take one). */
  app: string;
  version?: string;
  /** Full image reference for rolling / blue-green. */
  image?: string;
  /** `--digests`: app → image reference by digest (file or directory of JSON files). */
  digestsPath?: string;
  dryRun: boolean;
  thresholds: Thresholds;
  windowMs: number;
  rolloutTimeoutMs: number;
  prometheusUrl?: string;
  /** `namespace/service:port` of Prometheus, queried through the API server's service proxy. */
  prometheusService?: string;
  colour?: 'blue' | 'green';
  smokePath: string;
  keepOld: boolean;
  strategy: 'auto' | 'rolling' | 'blue-green';
  toRevision?: number;
  full: boolean;
  variants: string[];
  /** promote: the commit that was built (merged into the environment branch first). */
  source?: string;
  /** promote: write to this branch (checked out from the remote, or from --source when new). */
  branch?: string;
  push: boolean;
  remote: string;
  previousOut?: string;
  repoDir: string;
  auditFile: string;
}

export class UsageError extends Error {}

export const USAGE = `Usage: npm run deploy -- <command> --env <environment> (--app <name> | --apps a,b | --digests FILE) [options]

Commands:
  promote      write the digests into the environment's overlay (kustomize images) and commit;
               with --branch/--push onto the branch Argo CD syncs (env/<environment>)
  rollout status|promote|abort|pause|resume|undo|history
               drive or read the app's Argo Rollout (or its Deployment where there is none)
  verify       pods ready (a Rollout's stable and canary pods), error ratio and p99 over a window
  rollback     abort a Rollout (traffic back to stable), switch a blue-green Service back, or
               kubectl rollout undo a Deployment
  compare      A/B: each variant's requests, error ratio and p99 over --window, side by side
               (Prometheus: --prometheus-service or --prometheus-url); --variants a,b
  rolling      plain Deployment: set the image, wait, verify; rollout undo when it fails
  blue-green   Service selector switch (components/service-switch, clusters without Argo Rollouts)

Options:
  --env <environment>        staging | production-eu-west | production-us-east | production
  --namespace <ns>           override the namespace derived from --env
  --app <name> / --apps a,b  Rollout/Deployment/Service name(s), e.g. product-service
  --digests <file|dir>       JSON {"<app>": "<registry>/<app>@sha256:<hex>"} (build-images.sh
                             --digests); a directory merges every *.json in it. Names the apps
                             and, for promote and rollout status, the images they must run
  --version <tag>            image tag to release (rolling, blue-green)
  --registry <host/org>      image registry (default ${DEFAULT_REGISTRY}, or DEPLOY_REGISTRY)
  --dry-run                  print every action in order, execute none (also DRY_RUN=1)
  --max-error-ratio <0-1>    default ${DEFAULT_THRESHOLDS.maxErrorRatio}
  --max-p99-ms <ms>          default ${DEFAULT_THRESHOLDS.maxP99Ms}
  --min-requests <n>         fewer requests in the window cannot fail it (default ${DEFAULT_THRESHOLDS.minRequests})
  --window <duration>        metrics window / blue-green watch, e.g. 60s, 5m (default 60s)
  --rollout-timeout <dur>    how long a rollout may take (default 5m); --timeout is the same
  --prometheus-url <url>     query Prometheus (or PROMETHEUS_URL)
  --prometheus-service <ns/name:port>  query Prometheus through the API server's service proxy
                             (or PROMETHEUS_SERVICE); without either, scrape the pods' /metrics
  --colour blue|green        verify only that colour (service-switch component)
  --smoke-path <path>        blue-green smoke test GET on every new pod (default /openapi.json)
  --keep-old                 blue-green: leave the old colour running after a successful switch
  --strategy auto|rolling|blue-green   rollback: how to undo (default auto)
  --to-revision <n>          rollback / rollout undo / rollout history: the revision
  --full                     rollout promote: skip the remaining steps and analysis
  --variants a,b             compare: the variants (default a,b)
  --source <commit>          promote: the built commit, merged into the branch first (default HEAD)
  --branch <name>            promote: commit onto this branch (env/<environment> for Argo CD)
  --push                     promote: push the branch to --remote (default origin)
  --previous-out <file>      promote: write the digests the overlay held before (for a revert)
  --repo <dir>               promote: the checkout to edit (default the current directory)
  --audit-file <path>        audit log (default DEPLOY_AUDIT_FILE or deploy-audit.jsonl)
`;

function number(name: string, value: string | undefined, { min, max }: { min: number; max?: number }): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (max !== undefined && n > max)) throw new UsageError(`--${name} must be a number${max !== undefined ? ` between ${min} and ${max}` : ` ≥ ${min}`}, got "${value}"`);
  return n;
}

function duration(name: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

const prometheusServiceOf = (flag: string | undefined, env: NodeJS.ProcessEnv) => flag ?? (env.PROMETHEUS_SERVICE || undefined);

const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * argv (after `npm run deploy --`) and the environment → validated options; every problem
 * reported at once. `appsFromDigests` reads the app names of a --digests file (injected so the
 * parser stays free of I/O in tests).
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env, appsFromDigests: (path: string) => string[] = () => []): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        env: { type: 'string' },
        namespace: { type: 'string' },
        app: { type: 'string' },
        apps: { type: 'string' },
        digests: { type: 'string' },
        version: { type: 'string' },
        registry: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'max-error-ratio': { type: 'string' },
        'max-p99-ms': { type: 'string' },
        'min-requests': { type: 'string' },
        window: { type: 'string', default: '60s' },
        'rollout-timeout': { type: 'string' },
        timeout: { type: 'string' },
        'prometheus-url': { type: 'string' },
        'prometheus-service': { type: 'string' },
        colour: { type: 'string' },
        'smoke-path': { type: 'string', default: '/openapi.json' },
        'keep-old': { type: 'boolean', default: false },
        strategy: { type: 'string', default: 'auto' },
        'to-revision': { type: 'string' },
        full: { type: 'boolean', default: false },
        variants: { type: 'string', default: 'a,b' },
        source: { type: 'string' },
        branch: { type: 'string' },
        push: { type: 'boolean', default: false },
        remote: { type: 'string', default: 'origin' },
        'previous-out': { type: 'string' },
        repo: { type: 'string' },
        'audit-file': { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values: v, positionals } = parsed;
  const problems: string[] = [];
  const check = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };

  const command = positionals[0] as Command;
  if (!COMMANDS.includes(command)) problems.push(positionals[0] ? `unknown command "${positionals[0]}"` : 'a command is required');
  const action = command === 'rollout' ? (positionals[1] as RolloutAction) : undefined;
  if (command === 'rollout' && !(action && ROLLOUT_ACTIONS.includes(action))) problems.push(`rollout needs one of ${ROLLOUT_ACTIONS.join('|')}${positionals[1] ? `, got "${positionals[1]}"` : ''}`);
  if (positionals.length > (command === 'rollout' ? 2 : 1)) problems.push(`unexpected argument "${positionals.at(-1)}"`);
  if (!v.env || !(v.env in ENVIRONMENTS)) problems.push(`--env must be one of ${Object.keys(ENVIRONMENTS).join(', ')}`);
  if (command === 'promote') {
    if (v.env === 'production') problems.push('--env for promote names one region: production-eu-west or production-us-east');
    if (!v.digests) problems.push('--digests is required for promote');
    if (v.push && !v.branch) problems.push('--push needs --branch');
  }

  const digestsPath = v.digests;
  const digestApps = digestsPath ? (check(() => appsFromDigests(digestsPath)) ?? []) : [];
  const apps = v.app ? [v.app] : v.apps ? v.apps.split(',').map((a) => a.trim()).filter(Boolean) : digestApps;
  if (command !== 'promote') {
    if (!apps.length) problems.push('--app (or --apps, or --digests) is required');
    for (const app of apps) if (!K8S_NAME.test(app)) problems.push(`--app must be a Kubernetes name such as product-service, got "${app}"`);
  }
  if (command === 'compare' && !(v['prometheus-url'] ?? env.PROMETHEUS_URL) && !prometheusServiceOf(v['prometheus-service'], env)) {
    problems.push('compare reads Prometheus: pass --prometheus-service or --prometheus-url');
  }
  if ((command === 'rolling' || command === 'blue-green') && !v.version) problems.push(`--version is required for ${command}`);
  if ((command === 'rolling' || command === 'blue-green') && apps.length > 1) problems.push(`${command} takes one --app`);
  if (v.version && !/^[\w][\w.-]{0,127}$/.test(v.version)) problems.push('--version must be an image tag');
  if (v.colour !== undefined && v.colour !== 'blue' && v.colour !== 'green') problems.push('--colour must be blue or green');
  if (!['auto', 'rolling', 'blue-green'].includes(v.strategy)) problems.push('--strategy must be auto, rolling or blue-green');
  if (!v['smoke-path'].startsWith('/')) problems.push('--smoke-path must start with /');
  const prometheusService = prometheusServiceOf(v['prometheus-service'], env);
  if (prometheusService && !/^[a-z0-9-]+\/[a-z0-9-]+:\d+$/.test(prometheusService)) problems.push('--prometheus-service must look like monitoring/prometheus-operated:9090');
  const maxErrorRatio = check(() => number('max-error-ratio', v['max-error-ratio'], { min: 0, max: 1 }));
  const maxP99Ms = check(() => number('max-p99-ms', v['max-p99-ms'], { min: 1 }));
  const minRequests = check(() => number('min-requests', v['min-requests'], { min: 0 }));
  const toRevision = check(() => number('to-revision', v['to-revision'], { min: 1 }));
  const windowMs = check(() => duration('window', v.window));
  const rolloutTimeoutMs = check(() => duration('rollout-timeout', v['rollout-timeout'] ?? v.timeout ?? '5m'));
  if (problems.length) throw new UsageError(problems.join('\n'));

  const environment = v.env as Environment;
  const registry = v.registry ?? env.DEPLOY_REGISTRY ?? DEFAULT_REGISTRY;
  const dryRun = v['dry-run'] || env.DRY_RUN === '1' || env.DRY_RUN === 'true';
  return {
    command,
    action,
    env: environment,
    namespace: v.namespace ?? ENVIRONMENTS[environment].namespace,
    apps,
    app: apps[0] ?? '',
    version: v.version,
    image: v.version && apps[0] ? `${registry}/${apps[0]}:${v.version}` : undefined,
    digestsPath: v.digests,
    dryRun,
    thresholds: {
      maxErrorRatio: maxErrorRatio ?? DEFAULT_THRESHOLDS.maxErrorRatio,
      maxP99Ms: maxP99Ms ?? DEFAULT_THRESHOLDS.maxP99Ms,
      minRequests: minRequests ?? DEFAULT_THRESHOLDS.minRequests,
    },
    windowMs: windowMs ?? 60_000,
    rolloutTimeoutMs: rolloutTimeoutMs ?? 300_000,
    prometheusUrl: v['prometheus-url'] ?? (env.PROMETHEUS_URL || undefined),
    prometheusService,
    colour: v.colour as Options['colour'],
    smokePath: v['smoke-path'],
    keepOld: v['keep-old'],
    strategy: v.strategy as Options['strategy'],
    toRevision,
    full: v.full,
    variants: v.variants.split(',').map((x) => x.trim()).filter(Boolean),
    source: v.source,
    branch: v.branch,
    push: v.push,
    remote: v.remote,
    previousOut: v['previous-out'],
    repoDir: v.repo ?? process.cwd(),
    auditFile: v['audit-file'] ?? env.DEPLOY_AUDIT_FILE ?? 'deploy-audit.jsonl',
  };
}
