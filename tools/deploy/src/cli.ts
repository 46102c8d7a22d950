/**
 * `npm run deploy -- <rolling|blue-green|verify|rollback> --env staging|production --app <name> …`
 * Drives the cluster through kubectl, verifies with Prometheus or the pods' /metrics, and appends
 * an audit record for every run (dry runs included).
 */
import { type Actor, appendAudit, auditRecord, detectActor } from './audit';
import { type Options, USAGE, UsageError, parseCli } from './args';
import { type Kubectl, dryRunKubectl, execKubectl, formatCommand } from './kubectl';
import { type MetricsSource, dryRunPrometheus, prometheusSource, scrapeSource } from './metrics-source';
import { DeployError, type Deps, type Report, blueGreen, rollback, rolling, verify } from './strategies';

export interface RunOverrides {
  /** Replaces kubectl (tests); ignored in a dry run, which never runs anything. */
  kubectl?: Kubectl;
  metrics?: MetricsSource;
  actor?: Actor;
  log?: (line: string) => void;
}

/** Runs one command and appends its audit record. Resolves with the report and the process exit code. */
export async function runDeploy(options: Options, overrides: RunOverrides = {}): Promise<{ report?: Report; exitCode: number; actions: string[] }> {
  const log = overrides.log ?? ((line: string) => console.log(line));
  const startedAt = new Date().toISOString();
  const actions: string[] = [];
  const record = (kubectl: Kubectl): Kubectl => ({
    run: (args) => {
      actions.push(formatCommand(args));
      return kubectl.run(args);
    },
  });
  const kubectl = record(options.dryRun ? dryRunKubectl(log) : (overrides.kubectl ?? execKubectl()));
  const sleep = options.dryRun
    ? async (ms: number) => log(`[dry-run] wait ${ms / 1000}s`)
    : (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const metrics =
    overrides.metrics ??
    (options.prometheusUrl
      ? options.dryRun
        ? dryRunPrometheus(options.prometheusUrl, log)
        : prometheusSource(options.prometheusUrl, sleep, undefined, log)
      : scrapeSource(kubectl, sleep));
  const deps: Deps = { kubectl, metrics, sleep, log };
  const target = { app: options.app, namespace: options.namespace };
  const actor = overrides.actor ?? detectActor(process.env);
  const settings = { thresholds: options.thresholds, windowMs: options.windowMs, rolloutTimeoutMs: options.rolloutTimeoutMs };

  // parseCli requires --version (and so an image) for the commands that release one.
  const image = () => {
    if (!options.image) throw new DeployError(`${options.command} needs --version`);
    return options.image;
  };
  const execute = async (): Promise<Report> => {
    switch (options.command) {
      case 'rolling':
        return rolling(deps, target, { ...settings, image: image(), changeCause: `deploy ${options.version} by ${actor.name}` });
      case 'blue-green':
        return blueGreen(deps, target, { ...settings, image: image(), smokePath: options.smokePath, keepOld: options.keepOld });
      case 'verify': {
        const { observations, verdict } = await verify(deps, target, settings, options.colour);
        return { outcome: verdict.ok ? 'succeeded' : 'verification_failed', reasons: verdict.reasons, checks: [{ stage: 'verify', observations, verdict }] };
      }
      case 'rollback':
        return rollback(deps, target, { strategy: options.strategy, toRevision: options.toRevision, rolloutTimeoutMs: options.rolloutTimeoutMs });
    }
  };

  let report: Report | undefined;
  let error: Error | undefined;
  try {
    report = await execute();
  } catch (caught) {
    error = caught as Error;
  }

  appendAudit(
    options.auditFile,
    auditRecord({
      startedAt,
      actor,
      command: options.command,
      env: options.env,
      namespace: options.namespace,
      app: options.app,
      fromVersion: report?.fromVersion ?? null,
      toVersion: report?.toVersion ?? options.version ?? null,
      dryRun: options.dryRun,
      outcome: report?.outcome ?? 'error',
      reasons: report?.reasons ?? [],
      verification: { thresholds: options.thresholds, windowMs: options.windowMs, source: metrics.describe, checks: report?.checks ?? [] },
      actions,
      error: error?.message,
    }),
  );
  if (!report) {
    log(`error: ${error?.message}`);
    return { exitCode: 1, actions };
  }
  log(`${options.command} ${options.app} in ${options.namespace}: ${report.outcome}${report.reasons.length ? ` (${report.reasons.join(', ')})` : ''}`);
  return { report, exitCode: report.outcome === 'succeeded' ? 0 : 1, actions };
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h') || !argv.length) {
    console.log(USAGE);
    return 0;
  }
  let options: Options;
  try {
    options = parseCli(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  return (await runDeploy(options)).exitCode;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
