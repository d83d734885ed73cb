/**
 * POYO for continuous signals (see `../shared/spec/poyo.md`). The GPU implementation lands with the
 * training-loop issue; this file already exposes the class identity used by `ModelConfig({ cls: POYO })`.
 *
 * @module
 */
import { registerModelClass } from "./model_class.ts";
import { PoyoKwargsSchema } from "./poyo_kwargs.ts";

/** The POYO model class. */
export class POYO {
  /** Name stored in serialized configs. */
  static readonly modelName = "POYO";
  /** Schema of `ModelConfig.kwargs` for POYO. */
  static readonly kwargsSchema = PoyoKwargsSchema;
}
registerModelClass(POYO);
