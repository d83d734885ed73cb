/**
 * Training progress for people: a single rewritten line on a terminal (step, loss, lr, samples/s, ETA),
 * plain periodic lines otherwise (logs, CI).
 *
 * @module
 */

/** Where progress goes. */
export interface ProgressIO {
  out(line: string): void;
  err(line: string): void;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

/** Reports steps as their metrics arrive (asynchronously, in step order). */
export class ProgressReporter {
  readonly #io: ProgressIO;
  readonly #total: number;
  readonly #samplesPerStep: number;
  readonly #every: number;
  readonly #tty: boolean;
  /** Rates count from here: construction, or the loop's start ({@linkcode ProgressReporter.start}). */
  #t0 = performance.now();
  #firstStep = 0;
  #lineOpen = false;

  constructor(io: ProgressIO, totalSteps: number, samplesPerStep: number, every: number) {
    this.#io = io;
    this.#total = totalSteps;
    this.#samplesPerStep = samplesPerStep;
    this.#every = Math.max(1, every);
    let tty = false;
    try {
      tty = Deno.stdout.isTerminal();
    } catch { /* no stdout */ }
    this.#tty = tty;
  }

  /**
   * The training loop starts now at `step` (steps done so far, e.g. on resume): rates count from here. Metrics
   * arrive in batches (a read-back every few steps), so timing from the first arrival instead would report
   * a whole batch of steps done in no time.
   */
  start(step: number): void {
    this.#firstStep = step;
    this.#t0 = performance.now();
  }

  /** A completed step (1-based) with its loss and learning rate. */
  step(step: number, loss: number, lr: number): void {
    const elapsed = (performance.now() - this.#t0) / 1000;
    const done = step - this.#firstStep;
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = (this.#total - step) / rate;
    const text = `step ${step}/${this.#total}  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}  ` +
      `${(rate * this.#samplesPerStep).toFixed(1)} samples/s  ETA ${fmtDuration(eta)}`;
    if (this.#tty) {
      Deno.stdout.writeSync(new TextEncoder().encode(`\r\x1b[2K${text}`));
      this.#lineOpen = true;
    } else if (step % this.#every === 0 || step === this.#total) this.#io.out(text);
  }

  /** A line that must not be overwritten (validation, checkpoints). */
  note(line: string): void {
    if (this.#lineOpen) {
      Deno.stdout.writeSync(new TextEncoder().encode("\n"));
      this.#lineOpen = false;
    }
    this.#io.out(line);
  }

  /** Ends the progress line. */
  done(): void {
    if (this.#lineOpen) Deno.stdout.writeSync(new TextEncoder().encode("\n"));
    this.#lineOpen = false;
  }
}
