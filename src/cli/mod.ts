/**
 * The `orion` command line: dispatcher, command registry, and the hooks training plugs into.
 *
 * @module
 */
export { debugEnabled, EXIT, permissionHint, reportError, UsageError } from "./cli_errors.ts";
export { type CliIO, consoleIO, recordingIO } from "./cli_io.ts";
export {
  type Command,
  type CommandContext,
  listCommands,
  lookupCommand,
  registerCommand,
} from "./command_registry.ts";
export { helpText } from "./help_command.ts";
export { loadConfigModule, type LoadedConfigModule } from "./load_config_module.ts";
export { main, type MainOptions } from "./main.ts";
export { findResumeTarget, type ResumeTarget } from "./resume_command.ts";
export { TRAINING_UNAVAILABLE } from "./train_command.ts";
export {
  type PipelineRequest,
  type PipelineRunner,
  pipelineRunner,
  registerPipelineRunner,
  registerTrainRunner,
  type TrainRequest,
  type TrainRunner,
  trainRunner,
} from "./train_runner.ts";
