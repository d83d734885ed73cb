/**
 * Run names: used as directory names under `runsDir`, so they are restricted to a portable character set.
 *
 * @module
 */
import { z } from "zod";

/** Letters, digits, `.`, `_`, `-`; starts with a letter or digit; at most 128 characters. */
export const RUN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The zod schema of a run (or pipeline) name. */
export const RunNameSchema = z.string().regex(RUN_NAME_PATTERN, {
  error:
    "Cannot use this name as a run name must be a directory name of letters, digits, '.', '_' and '-' (starting with a letter or digit, at most 128 characters)",
});
