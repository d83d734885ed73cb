/**
 * Worker entry point of the Ursa worker pool: runs `UrsaTask` messages and posts results back,
 * transferring sample buffers.
 *
 * @module
 */
import { runUrsaTask, transferablesOf, type UrsaTask } from "./ursa_tasks.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<{ id: number; task: UrsaTask }>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

const scope = self as unknown as WorkerScope;
scope.onmessage = async (event) => {
  const { id, task } = event.data;
  try {
    const result = await runUrsaTask(task);
    scope.postMessage({ id, result }, transferablesOf(result));
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};
