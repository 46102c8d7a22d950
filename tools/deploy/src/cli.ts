/**
 * `npm run deploy -- <command> --env <environment> (--app <name> | --apps a,b | --digests FILE) …`
 * Promotes digests through Git, drives Argo Rollouts and Deployments through kubectl, verifies
 * with Prometheus or the pods' /metrics, and appends an audit record for every run (dry runs
 * included; one record per app).
 */
import { type Actor, appendAudit, auditRecord, detectActor } from './audit';
import { type Options, USAGE, UsageError, parseCli } from './args';
import { type Kubectl, dryRunKubectl, execKubectl, formatCommand } from './kubectl';
import { type MetricsSource, dryRunPrometheus, prometheusSource, scrapeSource, serviceProxyBase, serviceProxyFetch } from './metrics-source';
import { type Git, type Digests, PromoteError, execGit, promote, readDigests } from './promote';
import { rolloutAction } from './rollouts';
import { DeployError, type Deps, type Report, blueGreen, describeCheck, rollback, rolling, verify } from './strategies';
import { judge } from './verify';

export interface RunOverrides {
  /** Replaces kubectl (tests); ignored in a dry run, which never runs anything. */
  kubectl?: Kubectl;
  metrics?: MetricsSource;
  actor?: Actor;
  log?: (line: string) => void;
  git?: Git;
  sleep?: (ms: number) => Promise<void>;
}

/** Runs one command for every app and appends an audit record per app. Exit code: the worst. */
export async function runDeploy(options: Options, overrides: RunOverrides = {}): Promise<{ report?: Report; exitCode: number; actions: string[] }> {
  if (options.command === 'promote') return runPromote(options, overrides);
  let last: { report?: Report; exitCode: number; actions: string[] } = { exitCode: 0, actions: [] };
  let worst = 0;
  const digests = options.digestsPath ? readDigests(options.digestsPath) : undefined;
  for (const app of options.apps) {
    last = await runOne({ ...options, app, image: digests?.[app] ?? (app === options.app ? options.image : undefined) }, overrides);
    worst = Math.max(worst, last.exitCode);
  }
  return { ...last, exitCode: worst };
}

async function runOne(options: Options, overrides: RunOverrides): Promise<{ report?: Report; exitCode: number; actions: string[] }> {
  const log = overrides.log ?? ((line: string) => console.log(line));
  const startedAt = new Date().toISOString();
  const actions: string[] = [];
  const record = (kubectl: Kubectl): Kubectl => ({
    dryRun: kubectl.dryRun,
    run: (args) => {
      actions.push(formatCommand(args));
      return kubectl.run(args);
    },
  });
  const kubectl = record(options.dryRun ? dryRunKubectl(log) : (overrides.kubectl ?? execKubectl()));
  const sleep =
    overrides.sleep ??
    (options.dryRun ? async (ms: number) => log(`[dry-run] wait ${ms / 1000}s`) : (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  // compare reads the window that just passed; the others measure the window to come.
  const windowWait = options.command === 'compare' ? async () => undefined : sleep;
  const metrics =
    overrides.metrics ??
    (options.prometheusUrl
      ? options.dryRun
        ? dryRunPrometheus(options.prometheusUrl, log)
        : prometheusSource(options.prometheusUrl, windowWait, undefined, log)
      : options.prometheusService
        ? prometheusSource(serviceProxyBase(options.prometheusService), windowWait, serviceProxyFetch(kubectl), log)
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
      case 'rollout': {
        const result = await rolloutAction(deps, target, options.action ?? 'status', { toRevision: options.toRevision, full: options.full, timeoutMs: options.rolloutTimeoutMs, image: options.image });
        if (result.output) log(result.output);
        if (!result.observations) return { outcome: 'succeeded', reasons: [], checks: [] };
        const verdict = judge(result.observations, options.thresholds);
        return {
          outcome: verdict.ok ? 'succeeded' : 'verification_failed',
          toVersion: options.image,
          reasons: verdict.reasons,
          checks: [{ stage: `rollout ${options.action} (${result.kind})`, observations: result.observations, verdict }],
        };
      }
      case 'compare': {
        // Informational: each variant's figures side by side, each judged against the thresholds.
        const checks: Report['checks'] = [];
        for (const variant of options.variants) {
          const figures = await metrics.measure({ app: target.app, namespace: target.namespace, variant, pods: [] }, options.windowMs);
          const verdict = judge({ figures }, options.thresholds);
          checks.push({ stage: `variant ${variant}`, observations: { figures }, verdict });
          log(`variant ${variant}: ${describeCheck({ figures }, verdict)}`);
        }
        return { outcome: 'succeeded', reasons: [], checks };
      }
      case 'promote':
        throw new DeployError('promote runs through runPromote');
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
      command: options.command === 'rollout' ? `rollout ${options.action}` : options.command,
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
  log(`${options.command}${options.action ? ` ${options.action}` : ''} ${options.app} in ${options.namespace}: ${report.outcome}${report.reasons.length ? ` (${report.reasons.join(', ')})` : ''}`);
  return { report, exitCode: report.outcome === 'succeeded' ? 0 : 1, actions };
}

async function runPromote(options: Options, overrides: RunOverrides): Promise<{ exitCode: number; actions: string[] }> {
  const log = overrides.log ?? ((line: string) => console.log(line));
  const startedAt = new Date().toISOString();
  const actor = overrides.actor ?? detectActor(process.env);
  const actions: string[] = [];
  let digests: Digests = {};
  let error: Error | undefined;
  let previous: Digests = {};
  let changed: string[] = [];
  try {
    digests = readDigests(options.digestsPath ?? '');
    ({ previous, changed } = await promote(
      { env: options.env, digests, repoDir: options.repoDir, source: options.source, branch: options.branch, push: options.push, remote: options.remote, previousOut: options.previousOut, dryRun: options.dryRun, actor: actor.name },
      overrides.git ?? execGit(options.repoDir),
      log,
      actions,
    ));
  } catch (caught) {
    error = caught as Error;
    if (!(error instanceof PromoteError)) log(String(error.stack));
  }
  appendAudit(
    options.auditFile,
    auditRecord({
      startedAt,
      actor,
      command: 'promote',
      env: options.env,
      namespace: options.namespace,
      app: Object.keys(digests).join(','),
      fromVersion: Object.keys(previous).length ? JSON.stringify(previous) : null,
      toVersion: Object.keys(digests).length ? JSON.stringify(digests) : null,
      dryRun: options.dryRun,
      outcome: error ? 'error' : 'succeeded',
      reasons: error ? [] : changed.length ? [] : ['unchanged'],
      verification: { checks: [] },
      actions,
      error: error?.message,
    }),
  );
  if (error) {
    log(`error: ${error.message}`);
    return { exitCode: 1, actions };
  }
  log(`promote ${options.env}: ${changed.length ? changed.join(', ') : 'nothing to change'}`);
  return { exitCode: 0, actions };
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h') || !argv.length) {
    console.log(USAGE);
    return 0;
  }
  let options: Options;
  try {
    options = parseCli(argv, process.env, (file) => Object.keys(readDigests(file)));
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof PromoteError)) throw error;
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
