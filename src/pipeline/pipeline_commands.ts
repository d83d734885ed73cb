/**
 * Registers the pipeline commands: `orion pipeline` (and the runner behind `orion train <pipeline.ts>`) and
 * `orion lineage`.
 *
 * @module
 */
import "./pipeline_command.ts";
import "./lineage_command.ts";
