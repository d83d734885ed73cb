/**
 * The messages and the shared control word between `CheckpointWriter` and its writer thread
 * (`checkpoint_write_worker.ts`, which documents the protocol).
 *
 * @module
 */
import type { WriteCheckpointOptions } from "./checkpoint_writer.ts";
import type { CheckpointInfo } from "./checkpoint_writer.ts";
import type { CheckpointState } from "./checkpoint_state.ts";
import type { CodeSnapshot } from "./code_version.ts";
import type { RetentionPolicy } from "./retention.ts";

/** The control word of an idle writer. */
export const CONTROL_IDLE = 0;

/** The control word's parts. */
export function decodeControl(word: number): { running: boolean; queuedId: number } {
  return { running: (word & 1) === 1, queuedId: word >>> 1 };
}

/** Messages to the worker. */
export type WorkerRequest =
  | {
    type: "init";
    runDir: string;
    control: Int32Array;
    initialParentHash: string | null;
    code?: CodeSnapshot;
    onExisting?: WriteCheckpointOptions["onExisting"];
    retentionPolicy?: RetentionPolicy;
  }
  | { type: "write"; id: number; claimed: boolean; step: number; state: CheckpointState; pins: string[] };

/** An error as it crosses the thread boundary. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** `CheckpointStateError.field`. */
  field?: string;
}

/** Messages from the worker. */
export type WorkerReply =
  | { type: "written"; id: number; info: CheckpointInfo }
  | { type: "failed"; id: number; error: SerializedError }
  | { type: "warning"; message: string };
