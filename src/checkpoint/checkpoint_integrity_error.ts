/**
 * `CheckpointIntegrityError`: a checkpoint directory was refused because files are missing, extra,
 * altered, truncated or malformed. Every problem names the file.
 *
 * @module
 */

/** One reason a checkpoint was refused. `file` is relative to the checkpoint directory. */
export interface CheckpointProblem {
  file: string;
  reason: string;
}

/** Thrown by the checkpoint reader; `problems` lists every failed check, each naming its file. */
export class CheckpointIntegrityError extends Error {
  /**
   * @param dir the checkpoint directory.
   * @param problems at least one problem.
   */
  constructor(readonly dir: string, readonly problems: CheckpointProblem[]) {
    const shown = problems.slice(0, 5).map((p) => `${p.file}: ${p.reason}`).join("; ");
    const more = problems.length > 5 ? `; and ${problems.length - 5} more` : "";
    super(`Cannot load checkpoint ${dir} as it fails verification: ${shown}${more}`);
    this.name = "CheckpointIntegrityError";
  }
}
