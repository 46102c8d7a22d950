export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one probe request is let through. */
  openMs: number;
  onStateChange?: (state: CircuitState) => void;
  now?: () => number;
}

/** What {@link CircuitBreaker.acquire} grants: a normal call, the single half-open probe, or nothing. */
export type Permit = 'call' | 'probe' | undefined;

/**
 * A per-upstream circuit breaker. Closed: calls go through and consecutive failures are counted.
 * Open: calls are refused (503 without calling the upstream) for `openMs`. Then half-open: exactly
 * one probe goes through; its success closes the circuit, its failure opens it again.
 */
export class CircuitBreaker {
  private state: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.now = options.now ?? Date.now;
  }

  get current(): CircuitState {
    return this.state;
  }

  /** Seconds until a probe may be let through (for `retry-after`). */
  get retryAfterSeconds(): number {
    return Math.max(Math.ceil((this.openedAt + this.options.openMs - this.now()) / 1000), 1);
  }

  /**
   * `canProbe: false` for a call that cannot be a fair probe (its request body is still arriving, so
   * the client, not the upstream, decides how long it takes): it never gets the half-open slot.
   */
  acquire({ canProbe = true }: { canProbe?: boolean } = {}): Permit {
    if (this.state === 'closed') return 'call';
    if (this.state === 'open') {
      if (this.now() - this.openedAt < this.options.openMs) return undefined;
      this.transition('half_open');
    }
    if (this.probing || !canProbe) return undefined;
    this.probing = true;
    return 'probe';
  }

  onSuccess(permit: Permit): void {
    this.failures = 0;
    if (permit === 'probe') this.probing = false;
    if (this.state !== 'closed') this.transition('closed');
  }

  onFailure(permit: Permit): void {
    if (permit === 'probe') this.probing = false;
    this.failures++;
    if (this.state === 'half_open' || (this.state === 'closed' && this.failures >= this.options.failureThreshold)) {
      this.openedAt = this.now();
      this.transition('open');
    }
  }

  /** The call ended without a verdict (the client went away): a probe slot is freed for the next request. */
  release(permit: Permit): void {
    if (permit === 'probe') this.probing = false;
  }

  private transition(state: CircuitState): void {
    this.state = state;
    this.options.onStateChange?.(state);
  }
}
