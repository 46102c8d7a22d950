/**
 * Argo Rollouts, driven with plain kubectl (no plugin to install on CI runners): reads are
 * `kubectl get rollout.argoproj.io -o json`, actions are the same patches the
 * `kubectl argo rollouts` plugin sends (spec.paused, and status.pauseConditions / status.abort /
 * status.promoteFull on the status subresource). Apps without a Rollout are Deployments and get
 * `kubectl rollout …`.
 */
import type { Kubectl } from './kubectl';
import { type Deps, DeployError, type Target, type VerifySettings, must, parseJson, podsOf, rolloutStatus } from './strategies';
import { type Observations, type Verdict, judge } from './verify';

export type WorkloadKind = 'rollout' | 'deployment';

/** A Rollout named after the app, or else its Deployment (also when the Rollout CRD is not installed). */
export async function workloadKind(kubectl: Kubectl, t: Target): Promise<WorkloadKind> {
  const result = await kubectl.run(['get', 'rollout.argoproj.io', t.app, '-n', t.namespace, '--ignore-not-found', '-o', 'name']);
  if (!result.ok) {
    if (/doesn't have a resource type|no matches for kind/i.test(result.stderr)) return 'deployment';
    throw new DeployError(`kubectl get rollout.argoproj.io ${t.app} failed: ${result.stderr.trim()}`);
  }
  return result.stdout.trim() ? 'rollout' : 'deployment';
}

export interface RolloutState {
  phase: string;
  message?: string;
  desired: number;
  ready: number;
  stableHash?: string;
  currentHash?: string;
  aborted: boolean;
  paused: boolean;
}

export async function rolloutState(kubectl: Kubectl, t: Target): Promise<RolloutState> {
  const json = parseJson<{
    spec?: { replicas?: number; paused?: boolean };
    status?: { phase?: string; message?: string; stableRS?: string; currentPodHash?: string; readyReplicas?: number; abort?: boolean; pauseConditions?: unknown[] };
  }>(await must(kubectl, ['get', 'rollout.argoproj.io', t.app, '-n', t.namespace, '-o', 'json']), `rollout ${t.app}`);
  const s = json.status ?? {};
  return {
    phase: s.phase ?? 'Unknown',
    message: s.message,
    desired: json.spec?.replicas ?? 1,
    ready: s.readyReplicas ?? 0,
    stableHash: s.stableRS,
    currentHash: s.currentPodHash,
    aborted: !!s.abort,
    paused: !!json.spec?.paused || (s.pauseConditions?.length ?? 0) > 0,
  };
}

/** The image the app's pod template names now (a workloadRef Rollout runs its Deployment's template). */
const templateImage = (t: Target) => ['get', 'deployment', t.app, '-n', t.namespace, '-o', 'jsonpath={.spec.template.spec.containers[0].image}'];

/** How often a wait polls the cluster (DEPLOY_POLL_MS, default 10 s). */
export const POLL_MS = Number(process.env.DEPLOY_POLL_MS ?? 10_000);

/**
 * Waits until the app's template names `image` (Argo CD has synced the promotion commit), then
 * until the rollout finished: a Rollout Healthy (Degraded or aborted fails at once), a Deployment
 * through `kubectl rollout status`.
 */
export async function waitForRollout(deps: Deps, t: Target, { timeoutMs, image, kind }: { timeoutMs: number; image?: string; kind?: WorkloadKind }): Promise<Observations> {
  const { kubectl } = deps;
  const rounds = Math.max(1, Math.ceil(timeoutMs / POLL_MS));
  if (image) {
    for (let round = 1; ; round++) {
      const now = await must(kubectl, templateImage(t));
      if (now === image || kubectl.dryRun) break;
      if (round >= rounds) return { rolloutTimedOut: true };
      deps.log(`${t.app} still runs ${now || 'nothing'}; waiting for Argo CD to sync ${image}`);
      await deps.sleep(POLL_MS);
    }
  }
  if ((kind ?? (await workloadKind(kubectl, t))) === 'deployment') {
    const status = await rolloutStatus(kubectl, t, t.app, timeoutMs);
    return { rolloutTimedOut: !status.ok };
  }
  for (let round = 1; ; round++) {
    const state = await rolloutState(kubectl, t);
    deps.log(`${t.app}: ${state.phase}${state.message ? ` (${state.message})` : ''}, ${state.ready}/${state.desired} ready`);
    if (state.phase === 'Healthy' && state.currentHash === state.stableHash) return { rolloutTimedOut: false, pods: { ready: state.ready, desired: state.desired } };
    if (state.phase === 'Degraded' || state.aborted) return { rolloutDegraded: true };
    if (round >= rounds || kubectl.dryRun) return kubectl.dryRun ? { rolloutTimedOut: false } : { rolloutTimedOut: true };
    await deps.sleep(POLL_MS);
  }
}

/** verify for a Rollout: the Deployment behind it is at 0 by design; judge the stable and canary pods. */
export async function verifyRollout(deps: Deps, t: Target, settings: VerifySettings): Promise<{ observations: Observations; verdict: Verdict }> {
  const state = await rolloutState(deps.kubectl, t);
  const pods = await podsOf(deps.kubectl, t);
  const group = (hash?: string) => {
    const of = pods.filter((p) => hash && p.hash === hash);
    return { hash: hash ?? '', ready: of.filter((p) => p.ready).length, total: of.length };
  };
  const stable = group(state.stableHash);
  const canary = state.currentHash !== state.stableHash ? group(state.currentHash) : undefined;
  const serving = [...pods.filter((p) => p.hash === state.stableHash), ...(canary ? pods.filter((p) => p.hash === state.currentHash) : [])];
  // During a release the figures that decide are the canary's own (as the Rollout's analysis
  // judges them); otherwise the whole service's.
  deps.log(`measuring ${settings.windowMs / 1000}s of ${canary ? `the canary's (${canary.hash}) ` : ''}traffic from ${deps.metrics.describe}`);
  const figures = await deps.metrics.measure(
    canary
      ? { app: t.app, namespace: t.namespace, podTemplateHash: canary.hash, pods: pods.filter((p) => p.hash === canary.hash) }
      : { app: t.app, namespace: t.namespace, pods: serving },
    settings.windowMs,
  );
  const observations: Observations = {
    rollout: { phase: state.phase, stable, ...(canary ? { canary } : {}) },
    rolloutDegraded: state.phase === 'Degraded' || state.aborted,
    // The Rollout's own count (stable and canary pods); the Deployment behind it is at 0 by design.
    pods: { ready: state.ready, desired: state.desired },
    healthy: serving.length > 0 && serving.every((p) => p.ready),
    figures,
  };
  const verdict = judge(observations, settings.thresholds);
  deps.log(`${verdict.ok ? 'PASS' : `FAIL (${verdict.reasons.join(', ')})`}: ${t.app} ${state.phase}, stable ${stable.ready}/${stable.total}${canary ? `, canary ${canary.ready}/${canary.total}` : ''}`);
  return { observations, verdict };
}

/**
 * Traffic goes back to the stable pods at once; Git still names the new image, so the durable
 * rollback is the revert promotion (promote --digests <previous>).
 */
export const abortRollout = (kubectl: Kubectl, t: Target) => must(kubectl, statusPatch(t, { abort: true }));

const rolloutRef = (t: Target) => `rollout.argoproj.io/${t.app}`;
const statusPatch = (t: Target, patch: object) => ['patch', rolloutRef(t), '-n', t.namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: patch })];
const specPatch = (t: Target, patch: object) => ['patch', rolloutRef(t), '-n', t.namespace, '--type=merge', '-p', JSON.stringify({ spec: patch })];

export interface ActionResult {
  kind: WorkloadKind;
  output: string;
  observations?: Observations;
}

/** `rollout <action>` for one app. */
export async function rolloutAction(
  deps: Deps,
  t: Target,
  action: 'status' | 'promote' | 'abort' | 'pause' | 'resume' | 'undo' | 'history',
  o: { toRevision?: number; full?: boolean; timeoutMs: number; image?: string },
): Promise<ActionResult> {
  const { kubectl } = deps;
  const kind = await workloadKind(kubectl, t);
  const deployment = `deployment/${t.app}`;
  const ns = ['-n', t.namespace];
  if (action === 'status') return { kind, output: '', observations: await waitForRollout(deps, t, { timeoutMs: o.timeoutMs, image: o.image, kind }) };
  if (kind === 'deployment') {
    switch (action) {
      case 'promote':
        throw new DeployError(`${t.app} is a Deployment: it has no steps to promote`);
      case 'abort':
      case 'undo': {
        // A Deployment cannot stop half-way: aborting it is undoing it.
        await must(kubectl, ['rollout', 'undo', deployment, ...ns, ...(o.toRevision ? [`--to-revision=${o.toRevision}`] : [])]);
        const status = await rolloutStatus(kubectl, t, t.app, o.timeoutMs);
        return { kind, output: '', observations: { rolloutTimedOut: !status.ok } };
      }
      case 'pause':
      case 'resume':
        return { kind, output: await must(kubectl, ['rollout', action, deployment, ...ns]) };
      case 'history':
        return { kind, output: await must(kubectl, ['rollout', 'history', deployment, ...ns, ...(o.toRevision ? [`--revision=${o.toRevision}`] : [])]) };
    }
  }
  switch (action) {
    case 'promote':
      // Clears the current pause step (or, --full, skips every remaining step and analysis).
      return { kind, output: await must(kubectl, statusPatch(t, o.full ? { promoteFull: true } : { pauseConditions: null })) };
    case 'abort':
      return { kind, output: await abortRollout(kubectl, t) };
    case 'pause':
      return { kind, output: await must(kubectl, specPatch(t, { paused: true })) };
    case 'resume':
      return { kind, output: await must(kubectl, specPatch(t, { paused: false })) };
    case 'history':
      return { kind, output: (await rolloutHistory(kubectl, t)).map((r) => `${r.revision}\t${r.hash}\t${r.image}\t${r.replicas}`).join('\n') };
    case 'undo': {
      const history = await rolloutHistory(kubectl, t);
      const current = history.at(-1);
      const target = o.toRevision ? history.find((r) => r.revision === o.toRevision) : history.at(-2);
      if (!target || !current) throw new DeployError(`${t.app}: no revision ${o.toRevision ?? 'before the current one'} (have ${history.map((r) => r.revision).join(', ') || 'none'})`);
      // The Rollout takes its template from the Deployment (workloadRef): put the old image there.
      // Under Argo CD this lasts until the next sync: revert in Git with promote as well.
      await must(kubectl, ['set', 'image', deployment, `${t.app}=${target.image}`, ...ns]);
      const observations = await waitForRollout(deps, t, { timeoutMs: o.timeoutMs, image: target.image, kind });
      return { kind, output: `${t.app}: revision ${current.revision} -> ${target.image} (revision ${target.revision})`, observations };
    }
  }
}

export interface Revision {
  revision: number;
  hash: string;
  image: string;
  replicas: number;
}

/** The Rollout's ReplicaSets by `rollout.argoproj.io/revision`, oldest first. */
export async function rolloutHistory(kubectl: Kubectl, t: Target): Promise<Revision[]> {
  const json = parseJson<{
    items?: {
      metadata: { annotations?: Record<string, string>; labels?: Record<string, string>; ownerReferences?: { kind: string; name: string }[] };
      spec?: { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } };
    }[];
  }>(await must(kubectl, ['get', 'replicasets', '-n', t.namespace, '-l', `app.kubernetes.io/name=${t.app}`, '-o', 'json']), `replicasets of ${t.app}`);
  return (json.items ?? [])
    .filter((rs) => rs.metadata.ownerReferences?.some((o) => o.kind === 'Rollout' && o.name === t.app))
    .map((rs) => ({
      revision: Number(rs.metadata.annotations?.['rollout.argoproj.io/revision'] ?? 0),
      hash: rs.metadata.labels?.['rollouts-pod-template-hash'] ?? '',
      image: rs.spec?.template?.spec?.containers?.[0]?.image ?? '',
      replicas: rs.spec?.replicas ?? 0,
    }))
    .sort((a, b) => a.revision - b.revision);
}


