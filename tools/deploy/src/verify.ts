/**
 * The verification decision, as pure functions over numbers: the deploy CLI (Prometheus or
 * scraped /metrics in a cluster) and the zero-downtime proof (scraped /metrics of local
 * processes) both feed these, so what rolls a release back is the same in both places.
 */

export interface Thresholds {
  /** Highest acceptable share of 5xx answers (0–1). */
  maxErrorRatio: number;
  /** Highest acceptable 99th percentile latency. */
  maxP99Ms: number;
  /**
   * Fewer requests than this say nothing either way: the window passes as "no traffic" rather
   * than failing (as the canary analysis treats NaN).
   */
  minRequests: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { maxErrorRatio: 0.01, maxP99Ms: 500, minRequests: 20 };

/** What a verification window measured. */
export interface Figures {
  requests: number;
  /** Answers with a 5xx status. */
  errors: number;
  /** errors / requests; 0 when there were no requests. */
  errorRatio: number;
  /** 99th percentile latency in ms, or null when there were no requests. */
  p99Ms: number | null;
}

export type Reason = 'rollout_degraded' | 'error_ratio_exceeded' | 'p99_exceeded' | 'pods_not_ready' | 'rollout_timed_out' | 'smoke_test_failed' | 'unhealthy';

export interface Verdict {
  ok: boolean;
  reasons: Reason[];
  /** False when the window held fewer than `minRequests` requests (then it cannot fail on figures). */
  conclusive: boolean;
}

/** Judges a window's figures against the thresholds. */
export function judgeFigures(figures: Figures, thresholds: Thresholds): Verdict {
  if (figures.requests < thresholds.minRequests) return { ok: true, reasons: [], conclusive: false };
  const reasons: Reason[] = [];
  if (figures.errorRatio > thresholds.maxErrorRatio) reasons.push('error_ratio_exceeded');
  if (figures.p99Ms !== null && figures.p99Ms > thresholds.maxP99Ms) reasons.push('p99_exceeded');
  return { ok: reasons.length === 0, reasons, conclusive: true };
}

/** Everything a release is judged on; absent checks were not run. */
export interface PodGroup {
  hash: string;
  ready: number;
  total: number;
}

export interface Observations {
  rolloutTimedOut?: boolean;
  /** An Argo Rollout reported Degraded or was aborted (its analysis failed, or someone aborted it). */
  rolloutDegraded?: boolean;
  /** What a Rollout runs: its phase, the stable pods and, during a release, the canary's. */
  rollout?: { phase: string; stable: PodGroup; canary?: PodGroup };
  pods?: { ready: number; desired: number };
  healthy?: boolean;
  smokePassed?: boolean;
  figures?: Figures;
}

/** The release verdict: any failed check means roll back (or do not switch). */
export function judge(observations: Observations, thresholds: Thresholds): Verdict {
  const reasons: Reason[] = [];
  if (observations.rolloutTimedOut) reasons.push('rollout_timed_out');
  if (observations.rolloutDegraded) reasons.push('rollout_degraded');
  const pods = observations.pods;
  if (pods && (pods.desired === 0 || pods.ready < pods.desired)) reasons.push('pods_not_ready');
  if (observations.healthy === false) reasons.push('unhealthy');
  if (observations.smokePassed === false) reasons.push('smoke_test_failed');
  let conclusive = true;
  if (observations.figures) {
    const figures = judgeFigures(observations.figures, thresholds);
    reasons.push(...figures.reasons);
    conclusive = figures.conclusive;
  }
  return { ok: reasons.length === 0, reasons, conclusive };
}

/** `60s`, `2m`, `500ms`, `1h` or a bare number of seconds → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`Not a duration: "${text}" (use e.g. 500ms, 60s, 5m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition: scrape twice, diff the counters.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the samples of a /metrics body (comments and timestamps ignored). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key] = value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = match[3] === '+Inf' ? Infinity : Number(match[3]);
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}

/** Which series count: by default every route except the scrape itself. */
export type SeriesFilter = (labels: Record<string, string>) => boolean;
export const excludeScrapes: SeriesFilter = (labels) => labels.route !== '/metrics';

/** Request counters and latency buckets summed over one or more scrapes (e.g. every replica). */
export interface Counters {
  requests: number;
  errors: number;
  /** Cumulative bucket counts by upper bound (seconds). */
  buckets: Map<number, number>;
}

export function countersFrom(samples: Sample[], filter: SeriesFilter = excludeScrapes): Counters {
  const counters: Counters = { requests: 0, errors: 0, buckets: new Map() };
  for (const s of samples) {
    if (!filter(s.labels)) continue;
    if (s.name === 'http_requests_total') {
      counters.requests += s.value;
      if (/^5\d\d$/.test(s.labels.status ?? '')) counters.errors += s.value;
    } else if (s.name === 'http_request_duration_seconds_bucket') {
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      counters.buckets.set(le, (counters.buckets.get(le) ?? 0) + s.value);
    }
  }
  return counters;
}

/** Adds counters of several targets (replicas) into one. */
export function sumCounters(all: Counters[]): Counters {
  const total: Counters = { requests: 0, errors: 0, buckets: new Map() };
  for (const c of all) {
    total.requests += c.requests;
    total.errors += c.errors;
    for (const [le, n] of c.buckets) total.buckets.set(le, (total.buckets.get(le) ?? 0) + n);
  }
  return total;
}

/**
 * The 99th (or any) percentile from cumulative histogram buckets, interpolated linearly inside
 * the bucket as Prometheus' histogram_quantile does. Null when the histogram is empty; when the
 * rank falls in the +Inf bucket the highest finite bound is returned.
 */
export function histogramQuantile(q: number, buckets: Map<number, number>): number | null {
  const sorted = [...buckets.entries()].sort(([a], [b]) => a - b);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return lowerBound;
      if (count === lowerCount) return le;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound;
}

/** Figures for the window between two scrapes (counter resets, i.e. a restarted process, count from zero). */
export function figuresBetween(before: Counters, after: Counters): Figures {
  const delta = (a: number, b: number) => (a >= b ? a - b : a);
  const requests = delta(after.requests, before.requests);
  const errors = delta(after.errors, before.errors);
  const buckets = new Map<number, number>();
  for (const [le, n] of after.buckets) buckets.set(le, delta(n, before.buckets.get(le) ?? 0));
  const p99 = histogramQuantile(0.99, buckets);
  return { requests, errors, errorRatio: requests ? errors / requests : 0, p99Ms: p99 === null ? null : Math.round(p99 * 1000 * 10) / 10 };
}

/** Nearest-rank percentile of raw values. */
export function percentile(values: number[], q: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// ---------------------------------------------------------------------------------------------
// PromQL for the same figures when a Prometheus server scrapes the pods.

export interface SeriesSelector {
  service: string;
  namespace: string;
  /** Blue-green colour (the ServiceMonitor copies the pod's `version` label onto every series). */
  version?: string;
  /** A/B variant (components/ab-testing: the pod's `variant` label on every series). */
  variant?: string;
  /** One Rollout ReplicaSet (the monitors copy `rollouts-pod-template-hash` onto every series). */
  podTemplateHash?: string;
}

export function promQueries({ service, namespace, version, variant, podTemplateHash }: SeriesSelector, windowMs: number) {
  const matchers = [
    `service="${service}"`,
    `namespace="${namespace}"`,
    ...(version ? [`version="${version}"`] : []),
    ...(variant ? [`variant="${variant}"`] : []),
    ...(podTemplateHash ? [`rollouts_pod_template_hash="${podTemplateHash}"`] : []),
    `route!="/metrics"`,
  ].join(',');
  const range = `${Math.max(1, Math.round(windowMs / 1000))}s`;
  return {
    requests: `sum(increase(http_requests_total{${matchers}}[${range}]))`,
    errors: `sum(increase(http_requests_total{${matchers},status=~"5.."}[${range}]))`,
    p99Seconds: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${matchers}}[${range}])))`,
  };
}

/** Figures from the three query results (NaN or absent = no traffic). */
export function figuresFromProm(requests: number, errors: number, p99Seconds: number): Figures {
  const n = Number.isFinite(requests) ? Math.round(requests) : 0;
  const e = Number.isFinite(errors) ? Math.round(errors) : 0;
  return { requests: n, errors: e, errorRatio: n ? e / n : 0, p99Ms: Number.isFinite(p99Seconds) ? Math.round(p99Seconds * 1000 * 10) / 10 : null };
}
