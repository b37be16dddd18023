// The window of a workload's history (tasks.workloadHistorySeconds): labels, tools and egress
// count when last seen inside it; call counts are kept per bucket of a sixtieth of the window
// and summed over the buckets that end inside it (so a count may include calls up to one bucket
// older than the window, never fewer than it holds).

export const WORKLOAD_BUCKETS = 60;

export class WorkloadWindow {
  readonly bucketSeconds: number;

  constructor(readonly seconds: number) {
    this.bucketSeconds = Math.max(1, Math.ceil(seconds / WORKLOAD_BUCKETS));
  }

  /** Seen after this epoch second: inside the window at `now`. */
  since(now: number): number {
    return now - this.seconds;
  }

  bucket(now: number): number {
    return Math.floor(now / this.bucketSeconds);
  }

  /** The oldest bucket still inside the window at `now`. */
  firstBucket(now: number): number {
    return this.bucket(now - this.seconds);
  }
}
