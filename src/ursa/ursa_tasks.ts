/**
 * The CPU-heavy Ursa tasks (file parsing and hashing, derivations, demo session synthesis) as plain
 * messages, so they run the same inline or in a worker (`worker_pool.ts`).
 *
 * @module
 */
import type { SignalData } from "./derivations.ts";
import { derivationNamed } from "./derivations.ts";
import { type DemoOptions, type DemoSessionFiles, writeDemoSession } from "./demo_corpus.ts";
import {
  type ImportEdfOptions,
  type ImportPupilOptions,
  type PreparedRecording,
  prepareEdfRecording,
  preparePupilRecording,
} from "./import_recording.ts";

/** A task message. */
export type UrsaTask =
  | { kind: "prepare_edf"; path: string; options: ImportEdfOptions }
  | { kind: "prepare_pupil"; path: string; options: ImportPupilOptions }
  | { kind: "derive"; derivation: string; input: SignalData }
  | {
    kind: "demo_session";
    dir: string;
    options: Omit<DemoOptions, "log" | "pool">;
    participant: string;
    sessionIndex: number;
  };

/** Result type of each task kind. */
export type UrsaTaskResult<T extends UrsaTask> = T extends { kind: "prepare_edf" | "prepare_pupil" }
  ? PreparedRecording
  : T extends { kind: "derive" } ? SignalData
  : DemoSessionFiles;

/** Runs a task in the current thread. */
export async function runUrsaTask<T extends UrsaTask>(task: T): Promise<UrsaTaskResult<T>> {
  switch (task.kind) {
    case "prepare_edf":
      return prepareEdfRecording(await Deno.readFile(task.path), task.path, task.options) as UrsaTaskResult<
        T
      >;
    case "prepare_pupil":
      return preparePupilRecording(
        await Deno.readTextFile(task.path),
        task.path,
        task.options,
      ) as UrsaTaskResult<T>;
    case "derive":
      return derivationNamed(task.derivation).run(task.input) as UrsaTaskResult<T>;
    case "demo_session":
      return await writeDemoSession(
        task.dir,
        task.options,
        task.participant,
        task.sessionIndex,
      ) as UrsaTaskResult<T>;
  }
  throw new Error(`Cannot run Ursa task of kind '${(task as { kind: string }).kind}': it is unknown`);
}

/** Buffers of a result that can be transferred instead of copied. */
export function transferablesOf(value: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const visit = (v: unknown) => {
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) {
        out.add(v.buffer);
      }
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === "object") Object.values(v).forEach(visit);
  };
  visit(value);
  return [...out];
}
