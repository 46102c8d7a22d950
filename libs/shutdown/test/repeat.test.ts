import { repeat } from '../src';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('repeat', () => {
  it('when a run outlasts the interval, then the next ticks are skipped rather than overlapping, and close waits for the run', async () => {
    let active = 0;
    let most = 0;
    let runs = 0;
    let finished = 0;
    const job = async () => {
      runs += 1;
      active += 1;
      most = Math.max(most, active);
      await sleep(60);
      active -= 1;
      finished += 1;
    };
    const closer = repeat('slow-job', 10, job, { immediately: true });
    expect(runs).toBe(1); // `immediately`: the first run starts before the first tick
    // Ticks every 10 ms against a 60 ms run: wait (bounded) for the second run rather than a fixed
    // time, which a loaded machine can overrun.
    for (let waited = 0; runs < 2 && waited < 5000; waited += 20) await sleep(20);
    await sleep(30);
    await closer.close();
    expect(most).toBe(1);
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(finished).toBe(runs); // close returned only after the run in progress ended
    await sleep(50);
    expect(runs).toBe(finished); // and nothing ran after it
  });

  it('without `immediately`, then the first run waits for the first tick', async () => {
    let runs = 0;
    const closer = repeat('tick', 30, async () => void (runs += 1));
    expect(runs).toBe(0);
    await sleep(70);
    await closer.close();
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(closer.name).toBe('tick');
  });
});
