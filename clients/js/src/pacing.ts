/**
 * The pace of mutations: a token bucket like the daemon's (`gateway.mutation_rate` and
 * `gateway.mutation_burst`, protocol §11), which closes a connection (4429) that sends faster.
 *
 * No clock of its own: time comes in as `now`, in seconds, from the caller's clock.
 */

/** The daemon's defaults: 200 mutations per second on average, 400 at once. */
export const MUTATION_RATE = 200;
export const MUTATION_BURST = 400;

// Refills are sums of float products; without this a bucket waited out to the exact instant could
// hold 0.9999999 tokens and send nothing.
const EPSILON = 1e-9;

/**
 * A tenth of the burst is never spent. Paced to the exact limit, the daemon's bucket would sit just
 * under one token, and a frame arriving a little sooner after the one before than it was sent (the
 * network, either side's scheduling) would be refused; the reserve absorbs such jitter, up to
 * `reserve / rate` seconds of it (200 ms at the defaults). Seen against a real daemon: without it,
 * a thousand inserts were refused (4429) within the first second.
 */
export function reserveOf(burst: number): number {
  return Math.floor(burst / 10);
}

/** `rate` tokens per second, at most `burst` held, `reserveOf(burst)` of them never spent; it starts full. */
export class TokenBucket {
  readonly reserve: number;
  private tokens: number;
  private stamp: number | null = null;

  /** @throws RangeError `rate` is not positive, or `burst` is not a whole number of at least 1. */
  constructor(
    readonly rate: number,
    readonly burst: number,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`mutationRate must be a positive number per second, got ${rate}`);
    if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError(`mutationBurst must be a whole number of at least 1, got ${burst}`);
    this.tokens = burst;
    this.reserve = reserveOf(burst);
  }

  /** How many tokens may be spent at `now`. */
  available(now: number): number {
    this.refill(now);
    return Math.max(0, Math.floor(this.tokens - this.reserve + EPSILON));
  }

  /** Spend `count` tokens at `now` (no more than `available(now)`). */
  take(count: number, now: number): void {
    this.refill(now);
    this.tokens -= count;
  }

  /** Seconds from `now` until a token is there (0 if one is). */
  wait(now: number): number {
    this.refill(now);
    const missing = this.reserve + 1 - this.tokens;
    return missing <= EPSILON ? 0 : missing / this.rate;
  }

  private refill(now: number): void {
    if (this.stamp !== null && now > this.stamp) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.stamp) * this.rate);
    }
    if (this.stamp === null || now > this.stamp) this.stamp = now;
  }
}
