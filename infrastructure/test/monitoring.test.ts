import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { createTestDatabase, testEnv } from '@cloudretail/testing';
import { APP_NAMES, k8sDir, parseManifests, requireTool, run, workspaceRoot } from './support';

const monitoring = path.join(workspaceRoot, 'infrastructure/monitoring');
const prometheusRule = () => parseManifests(readFileSync(path.join(k8sDir, 'base/monitoring/prometheusrule.yaml'), 'utf8'))[0];

beforeAll(() => {
  requireTool('promtool');
});

test('when the PrometheusRule groups are extracted, then promtool check rules accepts them', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rules-'));
  try {
    const file = path.join(dir, 'cloudretail.rules.yml');
    writeFileSync(file, stringify({ groups: prometheusRule().spec.groups }));

    const out = run('promtool', ['check', 'rules', file]);

    expect(out).toMatch(/SUCCESS: \d+ rules found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('when promtool check rules gets a broken expression, then it fails (the check is not a no-op)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rules-'));
  try {
    const file = path.join(dir, 'broken.rules.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'x', rules: [{ alert: 'Broken', expr: 'sum(rate(http_requests_total[5m]' }] }] }));

    expect(() => run('promtool', ['check', 'rules', file])).toThrow(/exited 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the alert unit tests pass: errors, latency, saga failures and consumer lag fire when they should and only then', () => {
  const out = run('promtool', ['test', 'rules', 'tests/alerts.test.yml'], { cwd: monitoring });

  expect(out).toContain('SUCCESS');
});

test('the compose Prometheus loads the same rules as the PrometheusRule, and its config is valid', () => {
  const composeRules = parse(readFileSync(path.join(monitoring, 'rules/cloudretail.rules.yml'), 'utf8'));

  expect(composeRules).toEqual({ groups: prometheusRule().spec.groups });
  expect(run('promtool', ['check', 'config', '--syntax-only', path.join(monitoring, 'prometheus.yml')])).toContain('SUCCESS');
});

test('the Grafana dashboard shows RED per service, saga outcomes and consumer lag from the provisioned datasource', () => {
  const dashboard = JSON.parse(readFileSync(path.join(monitoring, 'grafana/dashboards/cloudretail-overview.json'), 'utf8'));
  const datasource = parse(readFileSync(path.join(monitoring, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8')).datasources[0];
  const provider = parse(readFileSync(path.join(monitoring, 'grafana/provisioning/dashboards/cloudretail.yml'), 'utf8')).providers[0];
  const targets = dashboard.panels.flatMap((p: { targets?: { expr: string; datasource: { uid: string } }[] }) => p.targets ?? []);
  const exprs = targets.map((t: { expr: string }) => t.expr).join('\n');

  expect(provider.options.path).toBe('/var/lib/grafana/dashboards');
  expect(new Set(targets.map((t: { datasource: { uid: string } }) => t.datasource.uid))).toEqual(new Set([datasource.uid]));
  for (const needle of ['http_requests_total', 'status=~"5.."', 'http_request_duration_seconds_bucket', 'histogram_quantile(0.99', 'saga_outcomes_total', 'by (outcome)', 'event_consumer_lag', 'by (group, topic)']) {
    expect(exprs).toContain(needle);
  }
  expect(exprs).toMatch(/sum by \(service\)/);
});

// ---- Grafana dashboards (provisioned from grafana/dashboards by grafana/provisioning/dashboards/cloudretail.yml)

const dashboardsDir = path.join(monitoring, 'grafana/dashboards');
interface Panel {
  title?: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}
const dashboards = () =>
  readdirSync(dashboardsDir)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({ file, json: JSON.parse(readFileSync(path.join(dashboardsDir, file), 'utf8')) as { uid: string; title: string; panels: Panel[]; templating?: { list: { query?: { query?: string } | string }[] } } }));

/** Every PromQL expression of every dashboard panel, with Grafana's variables replaced by what Prometheus would get. */
function dashboardExprs(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (file: string, panels: Panel[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) out.push({ where: `${file}: ${panel.title}`, expr: target.expr });
      walk(file, panel.panels ?? []);
    }
  };
  for (const { file, json } of dashboards()) walk(file, json.panels);
  return out.map(({ where, expr }) => ({ where, expr: expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?\w+\}?/g, '.+') }));
}

const ruleExprs = () =>
  (parse(readFileSync(path.join(monitoring, 'rules/cloudretail.rules.yml'), 'utf8')) as { groups: { name: string; rules: { expr: string; record?: string; alert?: string }[] }[] }).groups.flatMap((g) =>
    g.rules.map((r) => ({ where: `rules: ${r.record ?? r.alert}`, expr: String(r.expr) })),
  );

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'le']);

/** Metric names a PromQL expression selects: identifiers that are not functions, keywords, labels, strings or durations. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?!\s*\(|[\w:])/g)].map((m) => m[1]).filter((name) => !PROMQL_WORDS.has(name.toLowerCase()));
}

test('when Grafana loads the dashboards, then there are RED, gateway, saga and deployment views, each with a unique uid, all on the provisioned datasource', () => {
  const all = dashboards();
  const uids = all.map((d) => d.json.uid);

  expect(new Set(uids).size).toBe(uids.length);
  expect(uids).toEqual(expect.arrayContaining(['cloudretail-red', 'cloudretail-gateway', 'cloudretail-saga', 'cloudretail-deployment']));
  const text = (file: string) => JSON.stringify(all.find((d) => d.file === file)!.json);
  for (const needle of ['gateway_upstream_request_duration_seconds_bucket', 'gateway_circuit_state', 'gateway_rate_limited_total', 'gateway_rate_limiter_redis_up']) expect(text('cloudretail-gateway.json')).toContain(needle);
  for (const needle of ['saga_outcomes_total', 'saga_duration_seconds_bucket', 'outcome=\\"timeout\\"', 'event_dead_letters', 'event_consumer_lag']) expect(text('cloudretail-saga.json')).toContain(needle);
  for (const needle of ['by (rollouts_pod_template_hash)', 'by (version)', 'histogram_quantile(0.99']) expect(text('cloudretail-deployment.json')).toContain(needle);
});

test('every PromQL expression of the dashboards and the rules parses (promtool)', () => {
  const exprs = [...dashboardExprs(), ...ruleExprs()];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dashboards-'));
  try {
    const file = path.join(dir, 'exprs.rules.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'every-expression', rules: exprs.map(({ expr }, i) => ({ record: `check:expr_${i}`, expr })) }] }));

    expect(run('promtool', ['check', 'rules', file])).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(exprs.length).toBeGreaterThan(30);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('metricNames finds the selected metrics, not functions, labels or keywords', () => {
  expect(metricNames('histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{service=~"a|b"}[5m]))) > on(service) group_left up')).toEqual([
    'http_request_duration_seconds_bucket',
    'up',
  ]);
  expect(metricNames('sum(rate(x_total{status=~"5.."}[5m])) / sum(rate(y_total[5m])) and z == 0')).toEqual(['x_total', 'y_total', 'z']);
});

describe('what the apps export', () => {
  let exported: Set<string>;

  beforeAll(async () => {
    exported = await scrapeMetricNames();
  }, 120_000);

  it('every metric a dashboard, a template variable or a rule names is one the apps really export', () => {
    const templating = dashboards().flatMap(({ file, json }) =>
      (json.templating?.list ?? []).map((v) => ({ where: `${file}: variable`, expr: (typeof v.query === 'string' ? v.query : v.query?.query ?? '').replace(/^label_values\(([^,)]+).*$/, '$1') })),
    );
    // Recording rules add series of their own, which alerts and panels may use.
    const recorded = new Set(ruleExprs().flatMap(({ where }) => where.slice('rules: '.length)).filter((name) => name.includes(':')));
    const known = (m: string) => exported.has(m) || recorded.has(m);
    const unknown = [...dashboardExprs(), ...ruleExprs(), ...templating].flatMap(({ where, expr }) => metricNames(expr).filter((m) => !known(m)).map((m) => `${where}: ${m}`));

    expect(unknown).toEqual([]);
    expect(exported).toContain('saga_outcomes_total');
  });

  it('a metric nobody exports is caught (the check is not a no-op)', () => {
    expect(metricNames('sum(rate(saga_outcome_total[5m]))').filter((m) => !exported.has(m))).toEqual(['saga_outcome_total']);
  });
});

/**
 * Starts every app in-process (a database of its own each, a private topic namespace) and collects
 * the names in their `GET /metrics`: every registered metric is listed (`# TYPE`) even before its
 * first observation; histograms contribute `_bucket`, `_sum` and `_count`. `up` is Prometheus' own.
 */
async function scrapeMetricNames(): Promise<Set<string>> {
  const names = new Set(['up']);
  const prefix = `t${Math.random().toString(36).slice(2, 10)}.`;
  for (const app of APP_NAMES) {
    const db = app === 'api-gateway' ? undefined : await createTestDatabase(`metrics_${app.split('-')[0]}`);
    const { start } = (await import(path.join(workspaceRoot, `apps/${app}/src/main`))) as { start: (env: NodeJS.ProcessEnv) => Promise<{ url: string; stop: () => Promise<void> }> };
    const service = await start(testEnv(db?.url ?? 'postgres://unused', { EVENT_TOPIC_PREFIX: prefix, REDIS_KEY_PREFIX: prefix, RATE_LIMIT_KEY_PREFIX: `${prefix}rl` }));
    try {
      const text = await (await fetch(`${service.url}/metrics`)).text();
      for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        names.add(name);
        if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      }
    } finally {
      await service.stop();
      await db?.drop();
    }
  }
  return names;
}
