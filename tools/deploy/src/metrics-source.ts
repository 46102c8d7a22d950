import type { Kubectl } from './kubectl';
import { type Figures, countersFrom, figuresBetween, figuresFromProm, parsePrometheusText, promQueries, sumCounters } from './verify';

/** The pods a measurement covers. */
export interface Target {
  app: string;
  namespace: string;
  /** Blue-green colour; absent = every pod of the app. */
  colour?: string;
  /** A/B variant (Prometheus only). */
  variant?: string;
  /** Only this Rollout ReplicaSet (the canary); `pods` are then its pods. */
  podTemplateHash?: string;
  pods: Pod[];
}

export interface Pod {
  name: string;
  /** The app container (kubectl exec -c). */
  container: string;
  /** The container's http port (a placeholder string in a dry run). */
  port: number | string;
  /** Where /health/* and /metrics answer: the `admin` port when the pod has one (the gateway), else `port`. */
  adminPort: number | string;
  /** The pod's Ready condition. */
  ready: boolean;
  /** Argo Rollouts' rollouts-pod-template-hash label (stable or canary), when a Rollout owns the pod. */
  hash?: string;
}

/** Measures a window: waits `windowMs` and returns what the target served in it. */
export interface MetricsSource {
  describe: string;
  measure(target: Target, windowMs: number): Promise<Figures>;
}

export type Sleep = (ms: number) => Promise<void>;

/**
 * kubectl arguments for a GET from inside the pod: node's fetch on 127.0.0.1 (the runtime image
 * has node, no curl). Exits non-zero unless 2xx; prints the body. The default-deny
 * NetworkPolicies do not apply to a pod talking to itself, unlike the API server's pod proxy.
 */
export const FETCH_SCRIPT = 'fetch(process.argv[1]).then(async (r) => { process.stdout.write(await r.text()); process.exit(r.ok ? 0 : 1); }, () => process.exit(1))';
export const podGet = (namespace: string, pod: Pod, port: number | string, path: string) => [
  'exec',
  pod.name,
  '-n',
  namespace,
  '-c',
  pod.container,
  '--',
  'node',
  '-e',
  FETCH_SCRIPT,
  `http://127.0.0.1:${port}${path}`,
];

/** Scrapes every pod's /metrics (from inside the pod) twice, `windowMs` apart, and diffs the counters. */
export function scrapeSource(kubectl: Kubectl, sleep: Sleep): MetricsSource {
  const scrapeAll = async (target: Target) => {
    const bodies = await Promise.all(
      target.pods.map(async (pod) => {
        const result = await kubectl.run(podGet(target.namespace, pod, pod.adminPort, '/metrics'));
        if (!result.ok) throw new Error(`scraping ${pod.name} failed: ${result.stderr.trim()}`);
        return result.stdout;
      }),
    );
    return sumCounters(bodies.map((body) => countersFrom(parsePrometheusText(body))));
  };
  return {
    describe: 'pod /metrics via kubectl exec (scraped twice, counters diffed)',
    async measure(target, windowMs) {
      const before = await scrapeAll(target);
      await sleep(windowMs);
      return figuresBetween(before, await scrapeAll(target));
    },
  };
}

export type Fetch = (url: string) => Promise<{ ok: boolean; status: number; json: () => Promise<unknown> }>;

/** Waits out the window, then asks Prometheus (PROMETHEUS_URL) for the window's figures. */
export function prometheusSource(url: string, sleep: Sleep, fetchFn: Fetch = fetch as unknown as Fetch, log?: (line: string) => void): MetricsSource {
  const query = async (promql: string): Promise<number> => {
    const res = await fetchFn(`${url.replace(/\/$/, '')}/api/v1/query?query=${encodeURIComponent(promql)}`);
    if (!res.ok) throw new Error(`Prometheus answered ${res.status} to ${promql}`);
    const body = (await res.json()) as { data?: { result?: { value?: [number, string] }[] } };
    const value = body.data?.result?.[0]?.value?.[1];
    return value === undefined ? NaN : Number(value);
  };
  return {
    describe: `Prometheus at ${url}`,
    async measure(target, windowMs) {
      await sleep(windowMs);
      const q = promQueries({ service: target.app, namespace: target.namespace, version: target.colour, variant: target.variant, podTemplateHash: target.podTemplateHash }, windowMs);
      log?.(`PromQL: ${q.requests} | ${q.errors} | ${q.p99Seconds}`);
      // One after the other: three small queries, and the order stays the same in logs and audits.
      const requests = await query(q.requests);
      const errors = await query(q.errors);
      const p99 = await query(q.p99Seconds);
      return figuresFromProm(requests, errors, p99);
    },
  };
}

/** --dry-run with Prometheus: prints the queries it would send and reports no traffic. */
export function dryRunPrometheus(url: string, print: (line: string) => void): MetricsSource {
  return {
    describe: `Prometheus at ${url} (dry run)`,
    async measure(target, windowMs) {
      const q = promQueries({ service: target.app, namespace: target.namespace, version: target.colour, variant: target.variant, podTemplateHash: target.podTemplateHash }, windowMs);
      print(`[dry-run] wait ${windowMs / 1000}s, then query ${url}: ${q.requests}`);
      print(`[dry-run] query ${url}: ${q.errors}`);
      print(`[dry-run] query ${url}: ${q.p99Seconds}`);
      return figuresFromProm(NaN, NaN, NaN);
    },
  };
}

/**
 * Prometheus inside the cluster, queried through the API server's service proxy
 * (`kubectl get --raw /api/v1/namespaces/<ns>/services/<name>:<port>/proxy/api/v1/query?…`):
 * a CI runner needs only its kubeconfig, no route to Prometheus.
 */
export function serviceProxyFetch(kubectl: Kubectl): Fetch {
  return async (url) => {
    const result = await kubectl.run(['get', '--raw', url]);
    return { ok: result.ok, status: result.ok ? 200 : 502, json: async () => JSON.parse(result.stdout || '{}') };
  };
}

export const serviceProxyBase = (service: string) => {
  const [namespace, rest] = service.split('/');
  return `/api/v1/namespaces/${namespace}/services/${rest}/proxy`;
};
