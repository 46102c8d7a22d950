/**
 * A retry wait with "full jitter": random below the capped exponential ceiling
 * `min(capMs, baseMs × 2^attempt)` (`attempt` from 0). Retries of many clients after one outage
 * then spread out instead of arriving together (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function jitteredBackoff(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt));
}
