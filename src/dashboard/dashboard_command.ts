/**
 * `orion dashboard [--port 8080] [--runs-dir runs] [--host 127.0.0.1 [--token T]] [--catalog DIR]`.
 *
 * @module
 */
import { EXIT, UsageError } from "../cli/cli_errors.ts";
import { type Command, type CommandContext, registerCommand } from "../cli/command_registry.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { checkDashboardBinding, serveDashboard } from "./dashboard_server.ts";

/** Environment variable read when `--token` is not given (keeps the token out of `ps`). */
export const DASHBOARD_TOKEN_ENV = "ORION_DASHBOARD_TOKEN";

const USAGE = `orion dashboard [--port 8080] [--runs-dir runs] [--host 127.0.0.1] [--token T] [--catalog DIR]

Serves a read-only web page of the runs in --runs-dir: status, live loss / learning-rate / throughput curves,
checkpoints (config, code version, data summary), benchmark results, the lineage graph of fine-tuned runs,
and a train/test overlap check. Stop it with Ctrl-C.

  --port N        port (default 8080; 0 picks a free one)
  --runs-dir DIR  directory of run directories (default runs)
  --host ADDR     address to bind (default 127.0.0.1). Any non-loopback address (e.g. 0.0.0.0) needs a token
  --token T       secret every request must carry (?token=T in the URL); also read from $${DASHBOARD_TOKEN_ENV}
  --catalog DIR   catalog for runs whose config names none (default $ORION_HOME/catalog or ./.orion/catalog)
  -h, --help      show this help`;

async function runDashboard(args: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    port: { type: "string" },
    "runs-dir": { type: "string" },
    host: { type: "string" },
    token: { type: "string" },
    catalog: { type: "string" },
  }, USAGE);
  if (positionals.length > 0) {
    throw new UsageError(
      `Cannot use positional arguments ${positionals.join(" ")}: the dashboard takes flags only`,
      USAGE,
    );
  }
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`Cannot listen on --port ${values.port}: it must be an integer in 0..65535`, USAGE);
  }
  let envToken: string | undefined;
  try {
    envToken = Deno.env.get(DASHBOARD_TOKEN_ENV) || undefined;
  } catch {
    envToken = undefined;
  }
  const token = values.token ?? envToken;
  const host = values.host ?? "127.0.0.1";
  try {
    checkDashboardBinding(host, token);
  } catch (e) {
    throw new UsageError((e as Error).message, USAGE);
  }
  const abort = new AbortController();
  const stop = () => abort.abort();
  let signals = false;
  try {
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    signals = true;
  } catch { /* no signal support: runs until killed */ }
  try {
    const server = await serveDashboard({
      runsDir: values["runs-dir"] ?? "runs",
      cwd: ctx.cwd,
      catalogDir: values.catalog,
      host,
      port,
      token,
      signal: abort.signal,
    });
    ctx.io.out(`Orion dashboard (read-only): ${server.url}`);
    await server.finished;
    return EXIT.ok;
  } finally {
    if (signals) {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    }
  }
}

/** The `orion dashboard` command. */
export const dashboardCommand: Command = {
  name: "dashboard",
  summary:
    "serve a read-only web page of runs, live curves, checkpoints and benchmarks: orion dashboard [--port 8080]",
  usage: USAGE,
  run: runDashboard,
};

registerCommand(dashboardCommand);
