/**
 * Registers the checkpoint and run commands with the CLI: `orion ckpt` (gc, show, verify), `orion runs` (ls,
 * show, query), `orion overlap` and `orion verify-resume`. Import once (from `src/cli/builtin_commands.ts`).
 *
 * @module
 */
import { registerCommand } from "../cli/command_registry.ts";
import { CKPT_USAGE, ckptCommand } from "./ckpt_command.ts";
import { runsCLICommand } from "./runs_command.ts";
import { overlapCLICommand } from "./overlap_command.ts";
import { verifyResumeCommand } from "./verify_resume_command.ts";

registerCommand({
  name: "ckpt",
  summary: "checkpoints: gc (retention, --dry-run), show <dir|hash>, verify",
  usage: CKPT_USAGE,
  run: (args, ctx) => ckptCommand(args, ctx.io, ctx.cwd),
});
registerCommand(runsCLICommand);
registerCommand(overlapCLICommand);
registerCommand(verifyResumeCommand);
