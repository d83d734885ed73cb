/**
 * The commands `orion` knows. Each module registers its own commands at import (`registerCommand`); add one
 * import line here per module that provides commands (e.g. `import "../data/data_command.ts";`).
 *
 * @module
 */
import "../models/poyo.ts"; // registers the POYO model class (serialized configs name it)
import "./help_command.ts";
import "./train_command.ts";
import "./resume_command.ts";
import "../bench/bench_commands.ts"; // orion eval, orion bench
import "../train/train_commands.ts"; // train runner, data pre-flight, `orion data`
import "../train/distributed_commands.ts"; // `orion launch`, `orion worker`
import "../pipeline/pipeline_commands.ts"; // orion pipeline (and the runner of orion train <pipeline>), orion lineage
import "../train/debug_command.ts"; // `orion debug dump-step`
import "../checkpoint/checkpoint_commands.ts"; // orion ckpt, orion runs, orion overlap, orion verify-resume
import "../dashboard/dashboard_command.ts"; // `orion dashboard`
