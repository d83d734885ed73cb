/**
 * Learning-rate (and β1) schedules of `TrainingConfig.scheduler`, as pure functions of the optimizer
 * step, so a resumed run recomputes them exactly from the step counter.
 *
 * @module
 */

/** Scheduler kinds. */
export type SchedulerKind = "onecycle" | "cosine" | "constant";

/** Static schedule settings. */
export interface ScheduleSettings {
  kind: SchedulerKind;
  /** Peak (and base) learning rate. */
  lr: number;
  /** Total optimizer steps (`maxSteps`). */
  totalSteps: number;
  /** Warm-up steps of `cosine`. */
  warmupSteps: number;
  /** β1 outside the one-cycle schedule. */
  beta1: number;
}

/** Learning rate and β1 of one optimizer step. */
export interface ScheduledValues {
  lr: number;
  beta1: number;
}

/** PyTorch `OneCycleLR` constants used by the contract. */
export const ONE_CYCLE = {
  pctStart: 0.5,
  divFactor: 1,
  finalDivFactor: 1e4,
  baseMomentum: 0.85,
  maxMomentum: 0.95,
} as const;

function annealCos(start: number, end: number, pct: number): number {
  return end + (start - end) / 2 * (Math.cos(Math.PI * pct) + 1);
}

/**
 * Values for optimizer step `step` (0-based: the first `optimizer.step()` uses step 0), with PyTorch's
 * semantics for `onecycle` (`OneCycleLR(max_lr = lr, total_steps, pct_start = 0.5, anneal_strategy = "cos",
 * div_factor = 1, final_div_factor = 1e4, cycle_momentum = true, base_momentum = 0.85,
 * max_momentum = 0.95)`; β1 follows the momentum cycle).
 *
 * @example
 * ```ts
 * import { scheduledValues } from "./scheduler.ts";
 * const s = { kind: "onecycle", lr: 1e-3, totalSteps: 100, warmupSteps: 0, beta1: 0.9 } as const;
 * console.log(scheduledValues(s, 0), scheduledValues(s, 99));
 * ```
 */
export function scheduledValues(s: ScheduleSettings, step: number): ScheduledValues {
  switch (s.kind) {
    case "constant":
      return { lr: s.lr, beta1: s.beta1 };
    case "cosine": {
      if (step < s.warmupSteps) return { lr: s.lr * (step + 1) / s.warmupSteps, beta1: s.beta1 };
      const span = Math.max(1, s.totalSteps - s.warmupSteps);
      const pct = Math.min(1, (step - s.warmupSteps) / span);
      return { lr: s.lr * 0.5 * (1 + Math.cos(Math.PI * pct)), beta1: s.beta1 };
    }
    case "onecycle": {
      const initialLr = s.lr / ONE_CYCLE.divFactor;
      const minLr = initialLr / ONE_CYCLE.finalDivFactor;
      const phases = [
        {
          end: ONE_CYCLE.pctStart * s.totalSteps - 1,
          lr: [initialLr, s.lr],
          momentum: [ONE_CYCLE.maxMomentum, ONE_CYCLE.baseMomentum],
        },
        {
          end: s.totalSteps - 1,
          lr: [s.lr, minLr],
          momentum: [ONE_CYCLE.baseMomentum, ONE_CYCLE.maxMomentum],
        },
      ];
      let start = 0;
      for (let i = 0; i < phases.length; i++) {
        const ph = phases[i];
        if (step <= ph.end || i === phases.length - 1) {
          const pct = (step - start) / (ph.end - start);
          return {
            lr: annealCos(ph.lr[0], ph.lr[1], pct),
            beta1: annealCos(ph.momentum[0], ph.momentum[1], pct),
          };
        }
        start = ph.end;
      }
      throw new Error("unreachable");
    }
  }
}
