/**
 * Checkpoint storage: safetensors, atomic checkpoint directories, verification, retention, metrics log.
 *
 * @module
 */
export * from "./safetensors.ts";
export * from "./strict_json.ts";
export * from "./checkpoint_state.ts";
export * from "./checkpoint_layout.ts";
export * from "./checkpoint_manifest.ts";
export * from "./checkpoint_integrity_error.ts";
export * from "./code_version.ts";
export * from "./durable_fs.ts";
export * from "./scratch_dirs.ts";
export * from "./checkpoint_writer.ts";
export * from "./checkpoint_reader.ts";
export * from "./retention.ts";
export * from "./metrics_log.ts";
export * from "./ckpt_command.ts";
