import { ContainerGroup, buildImage, docker, requireDockerEngine } from '../src/containers';
import { ProcessGroup } from '../src/processes';
import { rollingUpdateOnContainers } from '../src/scenarios';

// Containers of this run carry a label of their own; afterAll removes them whatever happened.
const group = new ProcessGroup();
const containers = new ContainerGroup();
let image = '';
let engine = false;

beforeAll(async () => {
  await requireDockerEngine(); // no engine: the test fails with that message, it does not skip
  engine = true;
  image = await buildImage('product-service');
}, 600_000);

afterAll(async () => {
  await group.killAll();
  if (engine) await containers.removeAll();
});

describe('rolling update of product-service containers behind nginx', () => {
  it('when each of two containers is replaced by a new one and stopped with `docker stop` under load, then no request fails and every old container exits 0', async () => {
    const log: string[] = [];
    const result = await rollingUpdateOnContainers(
      { group, containers, image, log: (line) => log.push(line) },
      { replicas: 2, rollouts: 1, shutdownDelayMs: 1000, load: { connections: 6, ratePerSecond: 150 } },
    );
    console.log(`${log.join('\n')}\n${result.requests} requests, ${result.failures} failed, p99 ${result.p99Ms} ms (${result.p99DuringSwitchMs} ms while switching)`);

    expect(result.requests).toBeGreaterThan(300);
    expect(result.failuresByKind).toEqual({});
    expect(result.failures).toBe(0);
    // Both old containers drained and exited 0 as Docker recorded it (a non-zero exit would be noted).
    expect(result.notes).toEqual([]);
    expect(log.filter((line) => / → /.test(line))).toHaveLength(2);
    // Nothing of this run is left behind: the old containers are gone only after the finally.
    expect(await containers.list()).toEqual([]);
    expect(await docker(['ps', '--all', '--quiet', '--filter', `name=${containers.prefix}`])).toBe('');
  });
});
