/** Retry delays: exponential, capped, with jitter (the same as `syncd/core/backoff.py`). */

/**
 * The delays before successive retries of one failing thing: `initial`, doubling, capped at
 * `maximum`, each scaled into [1/2, 1) of itself by `jitter`, so that clients that lost the same
 * daemon do not all come back at once.
 */
export class Backoff {
  private delay: number;
  /** How many delays were handed out since the last `reset`. */
  attempts = 0;

  /**
   * @param initial seconds before the first retry (before jitter).
   * @param maximum the cap in seconds.
   * @param jitter returns a number in [0, 1); `Math.random` in production.
   * @throws RangeError `initial` is not positive or `maximum` is below it.
   */
  constructor(
    readonly initial: number,
    readonly maximum: number,
    private readonly jitter: () => number,
  ) {
    if (!(initial > 0) || !(maximum >= initial)) throw new RangeError("need 0 < initial <= maximum");
    this.delay = initial;
  }

  /** The delay before the next retry, in seconds; counts the attempt. */
  nextDelay(): number {
    this.attempts += 1;
    const delay = this.delay;
    this.delay = Math.min(delay * 2, this.maximum);
    return delay * (0.5 + 0.5 * this.jitter());
  }

  /** Start over after a success. */
  reset(): void {
    this.delay = this.initial;
    this.attempts = 0;
  }
}
