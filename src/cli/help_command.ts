/**
 * `orion help [command]`: lists every registered command, or prints one command's usage.
 *
 * @module
 */
import { closestMatch } from "../config/schema_tools.ts";
import { EXIT, UsageError } from "./cli_errors.ts";
import { type Command, listCommands, lookupCommand, registerCommand } from "./command_registry.ts";

/** The overview `orion help` prints: every registered command with its summary. */
export function helpText(): string {
  const commands = listCommands();
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "orion: training runtime for neural-signal models (Deno + WebGPU)",
    "",
    "usage: orion <command> [arguments]     (orion <command> --help for details)",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Exit codes: 0 ok, 2 usage or config error, 1 runtime failure. ORION_DEBUG=1 prints stack traces.",
    "Run through `deno task orion <command> ...` (or `deno task train <config.ts>`) for the right permissions.",
  ].join("\n");
}

/** A usage error for an unknown command, with a "did you mean" and the list of commands. */
export function unknownCommandError(name: string): UsageError {
  const names = listCommands().map((c) => c.name);
  const guess = closestMatch(name, names);
  return new UsageError(
    `Cannot run unknown command ${JSON.stringify(name)}${
      guess ? ` (did you mean "${guess}"?)` : ""
    }: known commands are ${names.join(", ")}`,
    "orion <command> [arguments]   (orion help lists commands)",
  );
}

/** The `orion help` command. */
export const helpCommand: Command = {
  name: "help",
  summary: "list commands, or show one command's usage: orion help [command]",
  usage: "orion help [command]",
  run(args, ctx) {
    if (args.length === 0) {
      ctx.io.out(helpText());
      return Promise.resolve(EXIT.ok);
    }
    const command = lookupCommand(args[0]);
    if (!command) throw unknownCommandError(args[0]);
    ctx.io.out(command.usage);
    return Promise.resolve(EXIT.ok);
  },
};

registerCommand(helpCommand);
