import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { k8sDir, parseManifests, requireTool, run, workspaceRoot } from './support';

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
