/**
 * `orion lineage <run|checkpoint> [--catalog DIR] [--json]`: the lineage graph of a run or checkpoint
 * (ancestors back to the first pre-training, descendants, step counts, benchmark scores) from the catalog.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { MANIFEST_FILE, parseCheckpointManifest } from "../checkpoint/checkpoint_manifest.ts";
import { defaultCatalogDir, openCatalog } from "../ursa/catalog.ts";
import { UsageError } from "../cli/cli_errors.ts";
import { type Command, type CommandContext, registerCommand } from "../cli/command_registry.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { formatLineage, lineageOf } from "./lineage_catalog.ts";

const USAGE = `orion lineage <run | checkpoint hash | checkpoint dir> [--catalog DIR] [--json]

Prints the lineage graph: the chain of runs back to the first pre-training (each with the checkpoint its
child started from), then every descendant; with own and cumulative step counts and benchmark scores.

  --catalog DIR   catalog directory (default: $ORION_HOME/catalog, else ./.orion/catalog)
  --json          print the graph as JSON
  -h, --help      show this help`;

async function subjectOf(arg: string, cwd: string): Promise<string> {
  const dir = resolve(cwd, arg);
  try {
    if ((await Deno.stat(dir)).isDirectory) {
      return parseCheckpointManifest(await Deno.readFile(join(dir, MANIFEST_FILE))).checkpointHash;
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return arg;
    throw e;
  }
  return arg;
}

async function runLineage(args: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    catalog: { type: "string" },
    json: { type: "boolean" },
  }, USAGE);
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "Cannot show a lineage without a run or checkpoint: none was given"
        : `Cannot show ${positionals.length} lineages at once: current arguments are ${
          positionals.join(" ")
        }`,
      USAGE,
    );
  }
  const catalog = await openCatalog(resolve(ctx.cwd, values.catalog ?? defaultCatalogDir()));
  try {
    const graph = await lineageOf(catalog, await subjectOf(positionals[0], ctx.cwd));
    ctx.io.out(values.json ? JSON.stringify(graph, null, 1) : formatLineage(graph));
    return 0;
  } finally {
    catalog.close();
  }
}

/** The `orion lineage` command. */
export const lineageCommand: Command = {
  name: "lineage",
  summary: "print a run's or checkpoint's lineage (ancestors, descendants, steps, scores)",
  usage: USAGE,
  run: runLineage,
};

registerCommand(lineageCommand);
