/**
 * `npm run demo:zero-downtime [-- --only rolling,blue-green,schema,containers] [--containers] [--rollouts 3] [--rate 400] [--client-keepalive]`:
 * runs the scenarios on real processes behind nginx (and, with `--containers`, the rolling update
 * on containers of the product-service image), prints a table and writes
 * bench/results/zero-downtime-<timestamp>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './builds';
import { ContainerGroup, buildImage, requireDockerEngine } from './containers';
import { ProcessGroup } from './processes';
import { type ScenarioResult, blueGreen, rollingUpdate, rollingUpdateOnContainers, schemaChange } from './scenarios';

export function table(results: ScenarioResult[]): string {
  const rows = [
    ['scenario', 'requests', 'failures', 'p99 (ms)', 'p99 during switch (ms)', 'time to roll back (ms)'],
    ...results.map((r) => [
      r.scenario,
      String(r.requests),
      r.episodeFailures === undefined ? String(r.failures) : `${r.failures} (${r.episodeFailures} while green served)`,
      String(r.p99Ms),
      r.p99DuringSwitchMs === null ? '—' : String(r.p99DuringSwitchMs),
      r.rollbackMs === undefined ? (r.switched === false ? 'not switched' : '—') : `${r.rollbackMs} (detected at ${r.detectionMs})`,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

async function main() {
  const { values } = parseArgs({
    options: {
      only: { type: 'string', default: 'rolling,blue-green,schema' },
      rollouts: { type: 'string', default: '3' },
      rate: { type: 'string' },
      connections: { type: 'string', default: '8' },
      'shutdown-delay-ms': { type: 'string', default: '1000' },
      'client-keepalive': { type: 'boolean', default: false },
      containers: { type: 'boolean', default: false },
    },
  });
  const only = new Set(values.only.split(','));
  const load = { connections: Number(values.connections), ratePerSecond: values.rate ? Number(values.rate) : undefined };
  const shutdownDelayMs = Number(values['shutdown-delay-ms']);
  if (values.containers) only.add('containers');
  const group = new ProcessGroup();
  const containers = new ContainerGroup();
  const ctx = { group, log: (line: string) => console.log(line) };
  const kill = () => void Promise.all([group.killAll(), containers.removeAll().catch(() => undefined)]).then(() => process.exit(130));
  process.once('SIGINT', kill);
  process.once('SIGTERM', kill);

  const results: ScenarioResult[] = [];
  const run = async (name: string, fn: () => Promise<ScenarioResult>) => {
    console.log(`\n▶ ${name}`);
    const result = await fn();
    results.push(result);
    console.log(`  ${result.requests} requests, ${result.failures} failures${result.notes.length ? ` — ${result.notes.join('; ')}` : ''}`);
  };
  try {
    if (only.has('rolling')) {
      await run('rolling update', () => rollingUpdate(ctx, { rollouts: Number(values.rollouts), shutdownDelayMs, clientKeepAlive: values['client-keepalive'], load }));
    }
    if (only.has('blue-green')) {
      await run('blue-green, healthy green', () => blueGreen(ctx, { label: 'healthy green', shutdownDelayMs, load }));
      await run('blue-green, faulty green caught before the switch', () =>
        blueGreen(ctx, { label: 'FAULT_ERROR_RATE=0.3, caught before switch', greenEnv: { FAULT_ERROR_RATE: '0.3' }, shutdownDelayMs, load }),
      );
      await run('blue-green, faulty green that passes the pre-switch checks', () =>
        blueGreen(ctx, { label: 'FAULT_ERROR_RATE=0.3, caught by the watch', greenEnv: { FAULT_ERROR_RATE: '0.3' }, preSwitch: 'health', shutdownDelayMs, load }),
      );
      await run('blue-green, slow green that passes the pre-switch checks', () =>
        blueGreen(ctx, { label: 'FAULT_DELAY_MS=700, caught by the watch', greenEnv: { FAULT_DELAY_MS: '700' }, preSwitch: 'health', shutdownDelayMs, load }),
      );
    }
    if (only.has('schema')) await run('schema change', () => schemaChange(ctx, { shutdownDelayMs, load }));
    if (only.has('containers')) {
      await run('rolling update on containers', async () => {
        console.log(`  Docker engine ${await requireDockerEngine()}; building the product-service image (build-images.sh --offline --no-scan)`);
        const image = await buildImage('product-service');
        return rollingUpdateOnContainers({ ...ctx, containers, image }, { rollouts: Number(values.rollouts), shutdownDelayMs, clientKeepAlive: values['client-keepalive'], load });
      });
    }
  } finally {
    await group.killAll();
    if (only.has('containers')) await containers.removeAll();
  }

  console.log(`\n${table(results)}\n`);
  const dir = path.join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `zero-downtime-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ measuredAt: new Date().toISOString(), host: { cpus: (await import('node:os')).cpus().length, node: process.version }, results }, null, 2)}\n`);
  console.log(`results written to ${path.relative(ROOT, file)}`);
  const unexpected = results.filter((r) => !r.rolledBack && r.switched !== false && r.failures > 0);
  process.exit(unexpected.length ? 1 : 0);
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
