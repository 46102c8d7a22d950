import {
  type Figures,
  countersFrom,
  figuresBetween,
  figuresFromProm,
  histogramQuantile,
  judge,
  judgeFigures,
  parseDuration,
  parsePrometheusText,
  promQueries,
} from '../src/verify';

const thresholds = { maxErrorRatio: 0.01, maxP99Ms: 500, minRequests: 20 };
const figures = (overrides: Partial<Figures> = {}): Figures => ({ requests: 1000, errors: 0, errorRatio: 0, p99Ms: 120, ...overrides });

describe('release verdict', () => {
  it('when error ratio and p99 are within the thresholds, then it passes', () => {
    expect(judgeFigures(figures({ errors: 10, errorRatio: 0.01, p99Ms: 500 }), thresholds)).toEqual({ ok: true, reasons: [], conclusive: true });
  });

  it('when the error ratio is over the threshold, then it fails with error_ratio_exceeded', () => {
    expect(judgeFigures(figures({ errors: 11, errorRatio: 0.011 }), thresholds)).toMatchObject({ ok: false, reasons: ['error_ratio_exceeded'] });
  });

  it('when p99 is over the threshold, then it fails with p99_exceeded', () => {
    expect(judgeFigures(figures({ p99Ms: 501 }), thresholds)).toMatchObject({ ok: false, reasons: ['p99_exceeded'] });
  });

  it('when both are over, then both reasons are given', () => {
    expect(judgeFigures(figures({ errorRatio: 0.3, errors: 300, p99Ms: 900 }), thresholds).reasons).toEqual(['error_ratio_exceeded', 'p99_exceeded']);
  });

  it('when the window holds fewer requests than the minimum, then it is inconclusive and does not fail', () => {
    expect(judgeFigures(figures({ requests: 19, errors: 19, errorRatio: 1, p99Ms: 9000 }), thresholds)).toEqual({ ok: true, reasons: [], conclusive: false });
  });

  it('when thresholds are tightened, then the same figures fail', () => {
    expect(judgeFigures(figures({ errors: 5, errorRatio: 0.005, p99Ms: 300 }), { ...thresholds, maxErrorRatio: 0.001, maxP99Ms: 250 }).reasons).toEqual([
      'error_ratio_exceeded',
      'p99_exceeded',
    ]);
  });

  it.each([
    [{ rolloutTimedOut: true }, 'rollout_timed_out'],
    [{ pods: { ready: 2, desired: 3 } }, 'pods_not_ready'],
    [{ pods: { ready: 0, desired: 0 } }, 'pods_not_ready'],
    [{ healthy: false }, 'unhealthy'],
    [{ smokePassed: false }, 'smoke_test_failed'],
  ])('when %j, then the release is rolled back for %s', (observations, reason) => {
    expect(judge(observations, thresholds)).toMatchObject({ ok: false, reasons: [reason] });
  });

  it('when pods are ready, healthy, the smoke test passed and the figures are fine, then it passes', () => {
    expect(judge({ rolloutTimedOut: false, pods: { ready: 3, desired: 3 }, healthy: true, smokePassed: true, figures: figures() }, thresholds).ok).toBe(true);
  });
});

describe('durations', () => {
  it('when given with a unit or as bare seconds, then they convert to milliseconds', () => {
    expect([parseDuration('500ms'), parseDuration('60s'), parseDuration('5m'), parseDuration('1h'), parseDuration('1.5'), parseDuration('90')]).toEqual([
      500, 60_000, 300_000, 3_600_000, 1500, 90_000,
    ]);
  });

  it('when malformed, then it throws naming the input', () => {
    expect(() => parseDuration('soon')).toThrow('"soon"');
  });
});

const scrape = (ok: number, errors: number, buckets: [string, number][], scrapes = 0) => `# HELP http_requests_total HTTP requests served
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/products/:id",status="200",service="product-service"} ${ok}
http_requests_total{method="GET",route="/products/:id",status="500",service="product-service"} ${errors}
http_requests_total{method="GET",route="/metrics",status="200",service="product-service"} ${scrapes}
${buckets.map(([le, n]) => `http_request_duration_seconds_bucket{le="${le}",method="GET",route="/products/:id",status="200",service="product-service"} ${n}`).join('\n')}
http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/metrics",status="200",service="product-service"} ${scrapes}
`;

describe('figures from two scrapes of /metrics', () => {
  it('when counters grew between scrapes, then the window figures are the differences, without the scrapes themselves', () => {
    const before = countersFrom(parsePrometheusText(scrape(100, 0, [['0.1', 90], ['0.5', 100], ['+Inf', 100]], 5)));
    const after = countersFrom(parsePrometheusText(scrape(1090, 10, [['0.1', 980], ['0.5', 1100], ['+Inf', 1100]], 9)));

    const result = figuresBetween(before, after);

    expect(result).toMatchObject({ requests: 1000, errors: 10, errorRatio: 0.01 });
    // rank 0.99 × 1000 = 990 falls in (0.1, 0.5]: 0.1 + 0.4 × (990 − 890) / (1000 − 890) ≈ 0.4636 s
    expect(result.p99Ms).toBeCloseTo(463.6, 0);
  });

  it('when a process restarted between scrapes (counter reset), then its new counts are used as they are', () => {
    const before = countersFrom(parsePrometheusText(scrape(5000, 0, [['+Inf', 5000]])));
    const after = countersFrom(parsePrometheusText(scrape(40, 2, [['+Inf', 42]])));
    expect(figuresBetween(before, after)).toMatchObject({ requests: 42, errors: 2 });
  });

  it('when nothing was served, then there are no figures to fail on', () => {
    const same = countersFrom(parsePrometheusText(scrape(10, 0, [['+Inf', 10]])));
    expect(figuresBetween(same, same)).toEqual({ requests: 0, errors: 0, errorRatio: 0, p99Ms: null });
  });

  it('when the rank falls in the +Inf bucket, then the quantile is the highest finite bound', () => {
    expect(histogramQuantile(0.99, new Map([[0.5, 10], [1, 20], [Infinity, 100]]))).toBe(1);
  });
});

describe('figures from Prometheus', () => {
  it('when querying, then the PromQL selects the app, namespace and colour and leaves out /metrics', () => {
    const q = promQueries({ service: 'api-gateway', namespace: 'cloudretail', version: 'green' }, 60_000);
    expect(q.errors).toBe('sum(increase(http_requests_total{service="api-gateway",namespace="cloudretail",version="green",route!="/metrics",status=~"5.."}[60s]))');
    expect(q.p99Seconds).toBe(
      'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="api-gateway",namespace="cloudretail",version="green",route!="/metrics"}[60s])))',
    );
  });

  it('when Prometheus has no series (NaN), then it counts as no traffic', () => {
    expect(figuresFromProm(NaN, NaN, NaN)).toEqual({ requests: 0, errors: 0, errorRatio: 0, p99Ms: null });
    expect(figuresFromProm(2000, 30, 0.25)).toEqual({ requests: 2000, errors: 30, errorRatio: 0.015, p99Ms: 250 });
  });
});
