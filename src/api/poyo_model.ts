/**
 * `POYO` as the public API exposes it: the model class a config names (`ModelConfig({ cls: POYO })`). The
 * class itself (GPU parameters, forward pass) is Orion's internal; configs only need its registered name and
 * its kwargs schema, so this is the same class object typed by {@link PoyoClass}.
 *
 * @module
 */
import type { z } from "zod";
import type { ModelClass } from "../models/model_class.ts";
import { POYO as PoyoModel } from "../models/poyo.ts";
import type { PoyoKwargs, PoyoKwargsInput } from "../models/poyo_kwargs.ts";

/** What a config sees of the POYO class. */
export interface PoyoClass extends ModelClass {
  /** `"POYO"`: the name serialized configs store. */
  readonly modelName: "POYO";
  /**
   * The zod schema of POYO's kwargs (see `PoyoKwargs`).
   *
   * @ignore
   */
  readonly kwargsSchema: z.ZodType<PoyoKwargs, PoyoKwargsInput>;
}

/**
 * POYO for continuous signals: value-patch tokens with channel embeddings, a rotary cross-attention encoder
 * into latents laid out in time, latent self-attention, and session-embedding decoder queries. Pass it as
 * `ModelConfig.cls`; its kwargs are {@link PoyoKwargs} (presets in `POYO_PRESETS`).
 *
 * @example
 * ```ts
 * import { ModelConfig, POYO, POYO_PRESETS } from "../../mod.ts";
 * const model = ModelConfig({ cls: POYO, kwargs: { ...POYO_PRESETS.poyo_1_3m, dimHead: 16 } });
 * console.log(model.cls.modelName, model.kwargs.dim); // "POYO" 64
 * ```
 */
export const POYO: PoyoClass = PoyoModel;
