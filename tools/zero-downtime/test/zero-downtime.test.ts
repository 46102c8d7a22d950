import { ProcessGroup } from '../src/processes';
import { blueGreen, rollingUpdate, schemaChange } from '../src/scenarios';

// One file, so the scenarios run one after another: in parallel they would compete for the same
// two cores with each other's load generators and replicas.
const group = new ProcessGroup();
afterAll(() => group.killAll());

describe('rolling update of product-service behind nginx', () => {
  it('when every replica is replaced one at a time in 3 consecutive rollouts under load, then no request fails', async () => {
    const result = await rollingUpdate({ group }, { replicas: 2, rollouts: 3, shutdownDelayMs: 300, load: { connections: 6, ratePerSecond: 150 } });

    expect(result.requests).toBeGreaterThan(300);
    expect(result.failuresByKind).toEqual({});
    expect(result.failures).toBe(0);
    // Every old replica drained and exited 0 (a forced exit would be noted).
    expect(result.notes).toEqual([]);
  }, 180_000);
});

describe('blue-green switch of product-service behind nginx', () => {
  it('when green answers 30% of requests with 500 after the switch, then the watch switches back to blue on its own with bounded errors', async () => {
    // The fault escapes the pre-switch check (readiness only), as a bug that only live traffic triggers would.
    const result = await blueGreen(
      { group },
      { label: 'faulty green', greenEnv: { FAULT_ERROR_RATE: '0.3' }, preSwitch: 'health', watchMs: 10_000, load: { connections: 6, ratePerSecond: 150 } },
    );

    expect(result).toMatchObject({ switched: true, rolledBack: true });
    expect(result.verdicts?.find((v) => v.stage === 'watch')?.verdict.reasons).toContain('error_ratio_exceeded');
    expect(result.rollbackMs).toBeLessThan(5000);
    // Clients saw errors only while green served, only green's 500s, and not many of them.
    expect(Object.keys(result.failuresByKind)).toEqual(['500']);
    expect(result.episodeFailures).toBe(result.failures);
    expect(result.failures).toBeGreaterThan(0);
    expect(result.failures).toBeLessThanOrEqual(150);
  }, 120_000);
});

describe('expand-only schema change of user-service under load', () => {
  it('when 002 is applied while the previous version serves and the new version then runs beside it, then no request fails', async () => {
    const result = await schemaChange({ group }, { replicas: 2, sideBySideMs: 1500, shutdownDelayMs: 300, load: { connections: 6, ratePerSecond: 100 } });

    expect(result.requests).toBeGreaterThan(200);
    expect(result.failuresByKind).toEqual({});
    expect(result.failures).toBe(0);
    // The new version read `preferences` ({} for rows the old version wrote) and every old replica exited 0.
    expect(result.notes.filter((n) => !n.startsWith('applied 002'))).toEqual([]);
  }, 120_000);
});
