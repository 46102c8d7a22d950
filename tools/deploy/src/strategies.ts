import { type Kubectl, type KubectlResult, formatCommand } from './kubectl';
import { type WorkloadKind, abortRollout, verifyRollout, workloadKind } from './rollouts';
import { type MetricsSource, type Pod, type Sleep, podGet } from './metrics-source';
import { type Figures, type Observations, type Thresholds, type Verdict, judge } from './verify';

export type Colour = 'blue' | 'green';
export type Outcome = 'succeeded' | 'rolled_back' | 'aborted' | 'verification_failed';

export interface Deps {
  kubectl: Kubectl;
  metrics: MetricsSource;
  sleep: Sleep;
  log: (line: string) => void;
}

export interface Target {
  app: string;
  namespace: string;
}

export interface VerifySettings {
  thresholds: Thresholds;
  /** Length of the metrics window (and of the watch after a blue-green switch). */
  windowMs: number;
  /** How long `kubectl rollout status` may wait for pods to become ready. */
  rolloutTimeoutMs: number;
}

/** What a run found out, for the exit code, the summary and the audit record. */
export interface Report {
  outcome: Outcome;
  fromVersion?: string;
  toVersion?: string;
  reasons: string[];
  checks: { stage: string; observations: Observations; verdict: Verdict }[];
}

export class DeployError extends Error {}

// Names as in infrastructure/kubernetes: Deployment and container are named after the app; the
// blue colour is the base Deployment `<app>`, green is `<app>-green`; pods carry
// app.kubernetes.io/name (and `version: blue|green` under blue-green).
export const deploymentOf = (app: string, colour?: Colour) => (colour === 'green' ? `${app}-green` : app);
export const selectorOf = (app: string, colour?: Colour) => `app.kubernetes.io/name=${app}${colour ? `,version=${colour}` : ''}`;
export const other = (colour: Colour): Colour => (colour === 'blue' ? 'green' : 'blue');
/** The tag of an image reference (`registry/app:1.2.3` → `1.2.3`); the whole reference when it has none. */
export const versionOf = (image: string) => {
  const tag = /:([^/:]+)$/.exec(image);
  return tag ? tag[1] : image;
};

export async function must(kubectl: Kubectl, args: string[]): Promise<string> {
  const result = await kubectl.run(args);
  if (!result.ok) throw new DeployError(`${formatCommand(args)} failed: ${result.stderr.trim() || 'no output'}`);
  return result.stdout.trim();
}

export function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DeployError(`kubectl did not return JSON for ${what}: ${text.slice(0, 200)}`);
  }
}

export const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms / 1000))}s`;
export const rolloutStatus = (kubectl: Kubectl, t: Target, deployment: string, timeoutMs: number): Promise<KubectlResult> =>
  kubectl.run(['rollout', 'status', `deployment/${deployment}`, '-n', t.namespace, `--timeout=${seconds(timeoutMs)}`]);

interface DeploymentState {
  replicas: number;
  readyReplicas: number;
  image: string;
}

export async function deploymentState(kubectl: Kubectl, t: Target, deployment: string): Promise<DeploymentState> {
  const json = parseJson<{
    spec?: { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } };
    status?: { readyReplicas?: number };
  }>(await must(kubectl, ['get', 'deployment', deployment, '-n', t.namespace, '-o', 'json']), `deployment ${deployment}`);
  return { replicas: json.spec?.replicas ?? 0, readyReplicas: json.status?.readyReplicas ?? 0, image: json.spec?.template?.spec?.containers?.[0]?.image ?? '' };
}

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: { containers: { name?: string; ports?: { name?: string; containerPort: number | string }[] }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

export async function podsOf(kubectl: Kubectl, t: Target, colour?: Colour): Promise<Pod[]> {
  const json = parseJson<{ items?: PodJson[] }>(await must(kubectl, ['get', 'pods', '-n', t.namespace, '-l', selectorOf(t.app, colour), '-o', 'json']), `pods of ${t.app}`);
  return (json.items ?? [])
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => {
      const ports = p.spec.containers[0]?.ports ?? [];
      const http = (ports.find((port) => port.name === 'http') ?? ports[0])?.containerPort ?? 0;
      return {
        name: p.metadata.name,
        container: p.spec.containers[0]?.name ?? t.app,
        port: http,
        // The gateway answers /health/* and /metrics on its admin port only.
        adminPort: ports.find((port) => port.name === 'admin')?.containerPort ?? http,
        ready: (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        hash: p.metadata.labels?.['rollouts-pod-template-hash'],
      };
    });
}

/**
 * GET `path` on every pod from inside the pod (kubectl exec, node's fetch on 127.0.0.1): the
 * default-deny NetworkPolicies block the API server's pod proxy, not a pod talking to itself.
 */
async function everyPodAnswers(kubectl: Kubectl, t: Target, pods: Pod[], path: string, port: 'http' | 'admin'): Promise<boolean> {
  const results = await Promise.all(pods.map((pod) => kubectl.run(podGet(t.namespace, pod, port === 'admin' ? pod.adminPort : pod.port, path))));
  return pods.length > 0 && results.every((r) => r.ok);
}

/**
 * Verification of what runs now: pods ready, every pod's /health/ready, then the error ratio and
 * p99 over a window (Prometheus or the pods' own /metrics), judged against the thresholds.
 */
export async function verify(deps: Deps, t: Target, settings: VerifySettings, colour?: Colour, kind?: WorkloadKind): Promise<{ observations: Observations; verdict: Verdict }> {
  // A colour is a Deployment of the service-switch component; otherwise ask whether a Rollout runs the app.
  if (!colour && (kind ?? (await workloadKind(deps.kubectl, t))) === 'rollout') return verifyRollout(deps, t, settings);
  const state = await deploymentState(deps.kubectl, t, deploymentOf(t.app, colour));
  const pods = await podsOf(deps.kubectl, t, colour);
  // Readiness as the kubelet probes it (pod Ready condition): no network path into the pods needed.
  const healthy = pods.length > 0 && pods.every((p) => p.ready);
  deps.log(`measuring ${settings.windowMs / 1000}s of traffic from ${deps.metrics.describe}`);
  const figures: Figures = await deps.metrics.measure({ app: t.app, namespace: t.namespace, colour, pods }, settings.windowMs);
  const observations: Observations = { pods: { ready: state.readyReplicas, desired: state.replicas }, healthy, figures };
  const verdict = judge(observations, settings.thresholds);
  deps.log(describeCheck(observations, verdict));
  return { observations, verdict };
}

export function describeCheck(o: Observations, v: Verdict): string {
  const parts: string[] = [];
  if (o.pods) parts.push(`pods ${o.pods.ready}/${o.pods.desired} ready`);
  if (o.healthy !== undefined) parts.push(o.healthy ? 'healthy' : 'unhealthy');
  if (o.smokePassed !== undefined) parts.push(`smoke ${o.smokePassed ? 'passed' : 'failed'}`);
  if (o.figures) {
    const f = o.figures;
    parts.push(`${f.requests} requests, ${f.errors} errors (${(f.errorRatio * 100).toFixed(2)}%), p99 ${f.p99Ms === null ? 'n/a' : `${f.p99Ms} ms`}${v.conclusive ? '' : ' (too little traffic to judge)'}`);
  }
  return `${v.ok ? 'PASS' : `FAIL (${v.reasons.join(', ')})`}: ${parts.join(', ')}`;
}

/**
 * Rolling update: set the image, wait for `rollout status` (the Deployment's maxUnavailable 0 /
 * readiness gates do the pacing), verify; on a timeout or a failed verification `rollout undo`.
 */
export async function rolling(deps: Deps, t: Target, { image, changeCause, ...settings }: VerifySettings & { image: string; changeCause: string }): Promise<Report> {
  const { kubectl } = deps;
  const before = await deploymentState(kubectl, t, t.app);
  const report: Report = { outcome: 'succeeded', fromVersion: versionOf(before.image), toVersion: versionOf(image), reasons: [], checks: [] };
  await must(kubectl, ['set', 'image', `deployment/${t.app}`, `${t.app}=${image}`, '-n', t.namespace]);
  await must(kubectl, ['annotate', `deployment/${t.app}`, `kubernetes.io/change-cause=${changeCause}`, '--overwrite', '-n', t.namespace]);
  const status = await rolloutStatus(kubectl, t, t.app, settings.rolloutTimeoutMs);
  let observations: Observations = { rolloutTimedOut: !status.ok };
  let verdict = judge(observations, settings.thresholds);
  if (status.ok) ({ observations, verdict } = await verify(deps, t, settings, undefined, 'deployment'));
  report.checks.push({ stage: 'after rollout', observations, verdict });
  if (verdict.ok) return report;

  deps.log(`rolling back ${t.app}: ${verdict.reasons.join(', ')}`);
  await must(kubectl, ['rollout', 'undo', `deployment/${t.app}`, '-n', t.namespace]);
  const undone = await rolloutStatus(kubectl, t, t.app, settings.rolloutTimeoutMs);
  if (!undone.ok) throw new DeployError(`rollback of ${t.app} did not become ready: ${undone.stderr.trim()}`);
  return { ...report, outcome: 'rolled_back', reasons: verdict.reasons };
}

/**
 * Blue-green: deploy the idle colour, wait until ready, smoke-test each of its pods, switch the
 * Service selector, watch; then scale the old colour down, or switch back.
 */
export async function blueGreen(
  deps: Deps,
  t: Target,
  { image, smokePath, keepOld, ...settings }: VerifySettings & { image: string; smokePath: string; keepOld: boolean },
): Promise<Report> {
  const { kubectl } = deps;
  const active = (await must(kubectl, ['get', 'service', t.app, '-n', t.namespace, '-o', 'jsonpath={.spec.selector.version}'])) as Colour;
  if (active !== 'blue' && active !== 'green') throw new DeployError(`Service ${t.app} in ${t.namespace} selects no version blue|green: not a blue-green app`);
  const idle = other(active);
  const [activeDeployment, idleDeployment] = [deploymentOf(t.app, active), deploymentOf(t.app, idle)];
  const current = await deploymentState(kubectl, t, activeDeployment);
  const report: Report = { outcome: 'succeeded', fromVersion: versionOf(current.image), toVersion: versionOf(image), reasons: [], checks: [] };
  const selectorPatch = (colour: Colour) => ['patch', 'service', t.app, '-n', t.namespace, '--type=merge', '-p', JSON.stringify({ spec: { selector: { version: colour } } })];
  const scale = (deployment: string, replicas: number) => must(kubectl, ['scale', `deployment/${deployment}`, `--replicas=${replicas}`, '-n', t.namespace]);
  deps.log(`${active} is live with ${current.image}; deploying ${image} as ${idle}`);

  // 1. Deploy the idle colour at the live colour's size and wait for it.
  await must(kubectl, ['set', 'image', `deployment/${idleDeployment}`, `${t.app}=${image}`, '-n', t.namespace]);
  await scale(idleDeployment, Math.max(1, current.replicas));
  const status = await rolloutStatus(kubectl, t, idleDeployment, settings.rolloutTimeoutMs);
  // 2. Smoke test before any traffic reaches it.
  let pre: Observations = { rolloutTimedOut: !status.ok };
  if (status.ok) {
    const pods = await podsOf(kubectl, t, idle);
    pre = { healthy: await everyPodAnswers(kubectl, t, pods, '/health/ready', 'admin'), smokePassed: await everyPodAnswers(kubectl, t, pods, smokePath, 'http') };
  }
  const preVerdict = judge(pre, settings.thresholds);
  report.checks.push({ stage: 'before switch', observations: pre, verdict: preVerdict });
  deps.log(describeCheck(pre, preVerdict));
  if (!preVerdict.ok) {
    // Nothing was switched: the live colour never saw the new version.
    await scale(idleDeployment, 0);
    return { ...report, outcome: 'aborted', reasons: preVerdict.reasons };
  }

  // 3. Switch, 4. watch.
  await must(kubectl, selectorPatch(idle));
  deps.log(`switched Service ${t.app} to ${idle}; watching`);
  const watch = await verify(deps, t, settings, idle);
  report.checks.push({ stage: 'after switch', ...watch });
  if (watch.verdict.ok) {
    if (!keepOld) await scale(activeDeployment, 0);
    return report;
  }
  // 5. Switch back: the old colour kept running, so this is instant.
  deps.log(`switching ${t.app} back to ${active}: ${watch.verdict.reasons.join(', ')}`);
  await must(kubectl, selectorPatch(active));
  await scale(idleDeployment, 0);
  return { ...report, outcome: 'rolled_back', reasons: watch.verdict.reasons };
}

/**
 * Undo the last release: under blue-green bring the other colour back (scaled up if it was scaled
 * down) and switch the selector to it; otherwise `kubectl rollout undo`.
 */
export async function rollback(
  deps: Deps,
  t: Target,
  { strategy = 'auto', toRevision, rolloutTimeoutMs }: { strategy?: 'auto' | 'rolling' | 'blue-green'; toRevision?: number; rolloutTimeoutMs: number },
): Promise<Report> {
  const { kubectl } = deps;
  if (strategy === 'auto' && (await workloadKind(kubectl, t)) === 'rollout') {
    // An Argo Rollout: abort sends traffic back to the stable pods at once (then revert in Git).
    await abortRollout(kubectl, t);
    return { outcome: 'succeeded', reasons: [], checks: [] };
  }
  let active: string | undefined;
  if (strategy !== 'rolling') {
    active = await must(kubectl, ['get', 'service', t.app, '-n', t.namespace, '-o', 'jsonpath={.spec.selector.version}']);
    if (strategy === 'blue-green' && active !== 'blue' && active !== 'green') throw new DeployError(`Service ${t.app} selects no version blue|green`);
  }
  if (active === 'blue' || active === 'green') {
    const back = other(active);
    const live = await deploymentState(kubectl, t, deploymentOf(t.app, active));
    const previous = await deploymentState(kubectl, t, deploymentOf(t.app, back));
    if (previous.replicas < Math.max(1, live.replicas)) {
      await must(kubectl, ['scale', `deployment/${deploymentOf(t.app, back)}`, `--replicas=${Math.max(1, live.replicas)}`, '-n', t.namespace]);
    }
    const status = await rolloutStatus(kubectl, t, deploymentOf(t.app, back), rolloutTimeoutMs);
    if (!status.ok) throw new DeployError(`${deploymentOf(t.app, back)} did not become ready, the Service still selects ${active}: ${status.stderr.trim()}`);
    await must(kubectl, ['patch', 'service', t.app, '-n', t.namespace, '--type=merge', '-p', JSON.stringify({ spec: { selector: { version: back } } })]);
    return { outcome: 'succeeded', fromVersion: versionOf(live.image), toVersion: versionOf(previous.image), reasons: [], checks: [] };
  }
  const before = await deploymentState(kubectl, t, t.app);
  await must(kubectl, ['rollout', 'undo', `deployment/${t.app}`, '-n', t.namespace, ...(toRevision ? [`--to-revision=${toRevision}`] : [])]);
  const status = await rolloutStatus(kubectl, t, t.app, rolloutTimeoutMs);
  if (!status.ok) throw new DeployError(`rollback of ${t.app} did not become ready: ${status.stderr.trim()}`);
  const after = await deploymentState(kubectl, t, t.app);
  return { outcome: 'succeeded', fromVersion: versionOf(before.image), toVersion: versionOf(after.image), reasons: [], checks: [] };
}
