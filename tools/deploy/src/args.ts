import { parseArgs } from 'node:util';
import { type Thresholds, DEFAULT_THRESHOLDS, parseDuration } from './verify';

export const COMMANDS = ['rolling', 'blue-green', 'verify', 'rollback'] as const;
export type Command = (typeof COMMANDS)[number];

/** Namespaces as the overlays in infrastructure/kubernetes/overlays set them. */
export const NAMESPACES = { staging: 'cloudretail-staging', production: 'cloudretail' } as const;
export type Environment = keyof typeof NAMESPACES;

export const DEFAULT_REGISTRY = 'ghcr.io/cloudretail';

export interface Options {
  command: Command;
  env: Environment;
  namespace: string;
  app: string;
  version?: string;
  /** Full image reference for rolling / blue-green. */
  image?: string;
  dryRun: boolean;
  thresholds: Thresholds;
  windowMs: number;
  rolloutTimeoutMs: number;
  prometheusUrl?: string;
  colour?: 'blue' | 'green';
  smokePath: string;
  keepOld: boolean;
  strategy: 'auto' | 'rolling' | 'blue-green';
  toRevision?: number;
  auditFile: string;
}

export class UsageError extends Error {}

export const USAGE = `Usage: npm run deploy -- <command> --env staging|production --app <name> [options]

Commands:
  rolling      set the image, wait for the rollout, verify; rollout undo when it fails
  blue-green   deploy the idle colour, smoke test, switch the Service, watch; scale the old colour
               down, or switch back when the watch fails
  verify       pods ready, /health/ready of every pod, error ratio and p99 over a window
  rollback     switch a blue-green Service back to the other colour, or kubectl rollout undo

Options:
  --env staging|production   target environment (namespace cloudretail-staging | cloudretail)
  --namespace <ns>           override the namespace derived from --env
  --app <name>               Deployment/Service name, e.g. product-service
  --version <tag>            image tag to release (rolling, blue-green)
  --registry <host/org>      image registry (default ${DEFAULT_REGISTRY}, or DEPLOY_REGISTRY)
  --dry-run                  print every action in order, execute none
  --max-error-ratio <0-1>    default ${DEFAULT_THRESHOLDS.maxErrorRatio}
  --max-p99-ms <ms>          default ${DEFAULT_THRESHOLDS.maxP99Ms}
  --min-requests <n>         fewer requests in the window cannot fail it (default ${DEFAULT_THRESHOLDS.minRequests})
  --window <duration>        metrics window / blue-green watch, e.g. 60s, 5m (default 60s)
  --rollout-timeout <dur>    how long pods may take to become ready (default 5m)
  --prometheus-url <url>     query Prometheus (or PROMETHEUS_URL); otherwise scrape pods' /metrics
  --colour blue|green        verify only that colour
  --smoke-path <path>        blue-green smoke test GET on every new pod (default /openapi.json)
  --keep-old                 blue-green: leave the old colour running after a successful switch
  --strategy auto|rolling|blue-green   rollback: how to undo (default auto: from the Service selector)
  --to-revision <n>          rollback: Deployment revision to return to
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

/** argv (after `npm run deploy --`) and the environment → validated options; every problem reported at once. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        env: { type: 'string' },
        namespace: { type: 'string' },
        app: { type: 'string' },
        version: { type: 'string' },
        registry: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'max-error-ratio': { type: 'string' },
        'max-p99-ms': { type: 'string' },
        'min-requests': { type: 'string' },
        window: { type: 'string', default: '60s' },
        'rollout-timeout': { type: 'string', default: '5m' },
        'prometheus-url': { type: 'string' },
        colour: { type: 'string' },
        'smoke-path': { type: 'string', default: '/openapi.json' },
        'keep-old': { type: 'boolean', default: false },
        strategy: { type: 'string', default: 'auto' },
        'to-revision': { type: 'string' },
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
  if (positionals.length > 1) problems.push(`unexpected argument "${positionals[1]}"`);
  if (v.env !== 'staging' && v.env !== 'production') problems.push('--env must be staging or production');
  if (!v.app || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v.app)) problems.push('--app must be a Kubernetes name such as product-service');
  if ((command === 'rolling' || command === 'blue-green') && !v.version) problems.push(`--version is required for ${command}`);
  if (v.version && !/^[\w][\w.-]{0,127}$/.test(v.version)) problems.push('--version must be an image tag');
  if (v.colour !== undefined && v.colour !== 'blue' && v.colour !== 'green') problems.push('--colour must be blue or green');
  if (!['auto', 'rolling', 'blue-green'].includes(v.strategy)) problems.push('--strategy must be auto, rolling or blue-green');
  if (!v['smoke-path'].startsWith('/')) problems.push('--smoke-path must start with /');
  const maxErrorRatio = check(() => number('max-error-ratio', v['max-error-ratio'], { min: 0, max: 1 }));
  const maxP99Ms = check(() => number('max-p99-ms', v['max-p99-ms'], { min: 1 }));
  const minRequests = check(() => number('min-requests', v['min-requests'], { min: 0 }));
  const toRevision = check(() => number('to-revision', v['to-revision'], { min: 1 }));
  const windowMs = check(() => duration('window', v.window));
  const rolloutTimeoutMs = check(() => duration('rollout-timeout', v['rollout-timeout']));
  if (problems.length) throw new UsageError(problems.join('\n'));

  const environment = v.env as Environment;
  const registry = v.registry ?? env.DEPLOY_REGISTRY ?? DEFAULT_REGISTRY;
  return {
    command,
    env: environment,
    namespace: v.namespace ?? NAMESPACES[environment],
    app: v.app ?? '',
    version: v.version,
    image: v.version ? `${registry}/${v.app}:${v.version}` : undefined,
    dryRun: v['dry-run'],
    thresholds: {
      maxErrorRatio: maxErrorRatio ?? DEFAULT_THRESHOLDS.maxErrorRatio,
      maxP99Ms: maxP99Ms ?? DEFAULT_THRESHOLDS.maxP99Ms,
      minRequests: minRequests ?? DEFAULT_THRESHOLDS.minRequests,
    },
    windowMs: windowMs ?? 60_000,
    rolloutTimeoutMs: rolloutTimeoutMs ?? 300_000,
    prometheusUrl: v['prometheus-url'] ?? (env.PROMETHEUS_URL || undefined),
    colour: v.colour as Options['colour'],
    smokePath: v['smoke-path'],
    keepOld: v['keep-old'],
    strategy: v.strategy as Options['strategy'],
    toRevision,
    auditFile: v['audit-file'] ?? env.DEPLOY_AUDIT_FILE ?? 'deploy-audit.jsonl',
  };
}
