/**
 * The worker thread behind `CheckpointWriter` (thread `"worker"`): it writes checkpoints with
 * {@link writeCheckpoint} and applies retention on its own event loop, so a write advances even while the
 * training loop keeps the main thread busy (a blocking `queue.submit`, CPU-bound steps).
 *
 * Protocol (messages are {@link WorkerRequest} / {@link WorkerReply}): one control word (`Int32Array` over a
 * `SharedArrayBuffer` shared with the main thread) holds `queuedId << 1 | running`, where `running` is 1 while
 * a job is claimed or being written and `queuedId` is the id of the one snapshot waiting (0: none). Both sides
 * change it only with compare-and-exchange, so every transition is atomic and neither side waits for the other:
 * - main thread, on submit: idle and nothing queued → it claims the job itself (`running` = 1) and sends it
 *   with `claimed: true`; otherwise it puts the job in the queue slot, superseding the job that was there;
 * - worker, after a job: a queued id → it claims that id (`running` stays 1, queue emptied) and writes it
 *   as soon as its message is here; nothing queued → `running` = 0.
 * So a snapshot is either written or superseded, never both, and at most two are pending.
 *
 * @module
 */
import { processCodeSnapshot, writeCheckpoint } from "./checkpoint_writer.ts";
import { gcCheckpoints } from "./retention.ts";
import {
  CONTROL_IDLE,
  decodeControl,
  type SerializedError,
  type WorkerReply,
  type WorkerRequest,
} from "./checkpoint_write_protocol.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply): void;
}

const scope = self as unknown as WorkerScope;
type WriteJob = Extract<WorkerRequest, { type: "write" }>;
let setup: Extract<WorkerRequest, { type: "init" }> | null = null;
let parentHash: string | null = null;
/** The id this worker claimed from the queue slot and must write next (its message may still be on the way). */
let claimedId = 0;
/** Messages of unclaimed jobs, by id (at most the queued one is kept). */
const held = new Map<number, WriteJob>();

function serializeError(e: unknown): SerializedError {
  if (e instanceof Error) {
    const field = (e as { field?: unknown }).field;
    return {
      name: e.name,
      message: e.message,
      stack: e.stack,
      ...(typeof field === "string" ? { field } : {}),
    };
  }
  return { name: "Error", message: String(e) };
}

async function write(job: WriteJob): Promise<WorkerReply> {
  const init = setup!;
  try {
    const info = await writeCheckpoint(init.runDir, job.step, job.state, {
      code: init.code,
      onExisting: init.onExisting,
      parentHash,
    });
    parentHash = info.hash;
    if (init.retentionPolicy !== undefined) {
      try {
        info.retention = await gcCheckpoints(init.runDir, init.retentionPolicy, {
          pins: [...job.pins, info.name],
        });
      } catch (e) {
        scope.postMessage({
          type: "warning",
          message: `checkpoint retention after step ${job.step} failed: ${
            e instanceof Error ? e.message : e
          }`,
        });
      }
    }
    return { type: "written", id: job.id, info };
  } catch (e) {
    return { type: "failed", id: job.id, error: serializeError(e) };
  }
}

/** After a job: claims the queued id, if any, else marks the writer idle. */
function claimNext(): void {
  const control = setup!.control;
  for (;;) {
    const word = Atomics.load(control, 0);
    const { queuedId } = decodeControl(word);
    const next = queuedId === 0 ? CONTROL_IDLE : 1;
    if (Atomics.compareExchange(control, 0, word, next) === word) {
      claimedId = queuedId;
      return;
    }
  }
}

async function run(job: WriteJob): Promise<void> {
  held.delete(job.id);
  const reply = await write(job);
  claimNext();
  scope.postMessage(reply);
  for (const id of [...held.keys()]) if (id !== claimedId && id !== queuedNow()) held.delete(id);
  const next = claimedId !== 0 ? held.get(claimedId) : undefined;
  if (next) {
    claimedId = 0;
    void run(next);
  }
}

function queuedNow(): number {
  return decodeControl(Atomics.load(setup!.control, 0)).queuedId;
}

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "init") {
    setup = message;
    parentHash = message.initialParentHash;
    // Collect the code version (git, deno.lock) now, not during the first checkpoint write.
    if (message.code === undefined) processCodeSnapshot().catch(() => {});
    return;
  }
  if (message.claimed || message.id === claimedId) {
    if (message.id === claimedId) claimedId = 0;
    void run(message); // the main thread claims only when idle, and a claimed id is run only when idle
    return;
  }
  // Unclaimed: keep it while it is the queued one (it is claimed when the running job ends).
  for (const id of [...held.keys()]) if (id !== queuedNow()) held.delete(id);
  if (message.id === queuedNow()) held.set(message.id, message);
};
