import { jitteredBackoff } from '../src';

describe('jitteredBackoff (full jitter)', () => {
  it('when called many times for one attempt, then waits spread over [0, min(cap, base × 2^attempt)) instead of all being equal', () => {
    const waits = Array.from({ length: 200 }, () => jitteredBackoff(3, 100, 10_000));

    expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...waits)).toBeLessThan(800);
    expect(new Set(waits).size).toBeGreaterThan(50);
  });

  it('when attempts grow, then the ceiling doubles up to the cap', () => {
    const ceiling = (attempt: number) => jitteredBackoff(attempt, 100, 5_000, () => 0.999_999);

    expect([0, 1, 2, 3, 6, 20].map(ceiling)).toEqual([99, 199, 399, 799, 4_999, 4_999]);
  });
});
