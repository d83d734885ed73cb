/**
 * `orion debug dump-step <config.ts> --out step.safetensors [--set k=v]...`: the contract's numerics dump of
 * the config's first training batch (dropout off, f32), for `scripts/reference/poyo_torch.py compare`.
 *
 * @module
 */
import { resolve } from "node:path";
import { registerCommand } from "../cli/command_registry.ts";
import { UsageError } from "../cli/cli_errors.ts";
import { loadConfigModule } from "../cli/load_config_module.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { applyOverrides, parseOverrides } from "../config/config_overrides.ts";
import { parseRunConfig } from "../config/run_config.ts";
import { Gpu } from "../gpu/gpu.ts";
import { POYO } from "../models/poyo.ts";
import { openRunData } from "./run_data.ts";
import { writeNumericsDump } from "./numerics_dump.ts";

const USAGE = `orion debug dump-step <config.ts> --out step.safetensors [--set k=v]...

Runs one forward/backward of the config's first training batch (dropout off, f32) with the config's
initial weights and writes the contract's numerics dump: weights under their contract names, batch.*,
out.logits, out.loss and grad.<parameter> for every parameter; __metadata__ records every model kwarg.
Compare it with PyTorch: python3 scripts/reference/poyo_torch.py compare step.safetensors`;

registerCommand({
  name: "debug",
  summary: "debugging tools: dump-step (numerics dump of one forward/backward for cross-framework checks)",
  usage: USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub !== "dump-step") {
      throw new UsageError(`Cannot run orion debug ${sub ?? ""}: the subcommand is dump-step`, USAGE);
    }
    const { values, positionals } = parseCommandArgs(rest, {
      out: { type: "string" },
      set: { type: "string", multiple: true },
    }, USAGE);
    if (positionals.length !== 1 || !values.out) {
      throw new UsageError("Cannot dump a step without a config file and --out <file.safetensors>", USAGE);
    }
    const loaded = await loadConfigModule(positionals[0], ctx.cwd);
    const config = parseRunConfig(applyOverrides(loaded.value, parseOverrides(values.set ?? [])));
    const data = await openRunData(config, { print: ctx.io.out });
    const gpu = await Gpu.create();
    try {
      const model = new POYO(gpu, data.kwargs, data.vocab, { seed: config.training.seed });
      const loader = data.dataset.loader("train", {
        batchSize: config.training.batchSize,
        seed: config.training.seed,
      });
      const batch = await loader.next();
      const out = resolve(ctx.cwd, values.out);
      await writeNumericsDump(out, model, batch);
      ctx.io.out(
        `wrote ${out}: ${model.params.slots.length} parameters, batch ${batch.batchSize}×${batch.numTokens} tokens`,
      );
      return 0;
    } finally {
      gpu.destroy();
    }
  },
});
