/**
 * Plugs training into the CLI: the train runner behind `orion train` / `orion resume`, the data check of
 * pre-flight, and the `orion data` command.
 *
 * @module
 */
import { registerTrainRunner } from "../cli/train_runner.ts";
import { registerPreflightProvider } from "../config/preflight_environment.ts";
import { registerCommand } from "../cli/command_registry.ts";
import { dataCommand } from "../ursa/data_cli.ts";
import { runTraining } from "./train_run.ts";
import { preflightRunData } from "./run_data.ts";
import { stageInit } from "../pipeline/pipeline_runner.ts";

registerTrainRunner(async (req) => {
  // A single run with initFrom loads its source checkpoint exactly as a pipeline stage does.
  const stage = req.config.initFrom && !req.resume ? await stageInit([req.config], 0, req.cwd, null) : null;
  const result = await runTraining({
    config: req.config,
    serializedConfig: req.serializedConfig,
    configHash: req.configHash,
    runDir: req.runDir,
    resumeFrom: req.resume ? req.resume.checkpointDir : undefined,
    init: stage?.init,
    lineage: stage?.lineage,
    io: { out: (l) => req.io.out(l), err: (l) => req.io.err(l) },
  });
  return result.status === "failed" ? 1 : 0;
});

registerPreflightProvider({ resolveQuery: (_data, config) => preflightRunData(config) });

registerCommand({
  name: "data",
  summary: "import EDF/BDF and pupil CSV files, derive signals, build the demo corpus, list the catalog",
  usage: "orion data <import-edf|import-pupil-csv|derive|demo|ls> ... (orion data --help)",
  run: (args) => dataCommand(args),
});
import "./bench_model_loader.ts"; // the model loader of `orion eval` and benchmark side processes
