/**
 * `manifest.json`: the last file written into a checkpoint. It lists every other file with its sha256
 * and size, the checkpoint's own hash and its parent's hash.
 *
 * The checkpoint hash is `sha256` over the UTF-8 text made of one line `"<path>\t<sha256>\n"` per file,
 * files sorted by path (code-unit order), `manifest.json` itself excluded. It therefore identifies the
 * checkpoint's content independently of where and when it was written.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";

/** Value of the manifest's `format` field. */
export const CHECKPOINT_FORMAT = "orion.checkpoint";
/** Manifest format version written by this code; the reader refuses other versions. */
export const CHECKPOINT_FORMAT_VERSION = 1;
/** File name of the manifest inside a checkpoint directory. */
export const MANIFEST_FILE = "manifest.json";

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A relative POSIX path with no empty, `.` or `..` segments. */
export function isSafeRelativePath(path: string): boolean {
  if (path.length === 0 || path.startsWith("/") || path.includes("\\") || path.includes("\0")) return false;
  return path.split("/").every((seg) => seg.length > 0 && seg !== "." && seg !== "..");
}

/** The zod schema of `manifest.json`. */
export const CheckpointManifestSchema = z.strictObject({
  format: z.literal(CHECKPOINT_FORMAT),
  formatVersion: z.literal(CHECKPOINT_FORMAT_VERSION),
  step: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  checkpointHash: z.string().regex(SHA256_HEX, "must be 64 lowercase hex digits"),
  parentHash: z.string().regex(SHA256_HEX, "must be 64 lowercase hex digits").nullable(),
  writtenAt: z.string(),
  files: z.array(z.strictObject({
    path: z.string().refine(isSafeRelativePath, "must be a relative path without '.', '..' or empty segments")
      .refine((p) => p !== MANIFEST_FILE, "must not list manifest.json itself"),
    sha256: z.string().regex(SHA256_HEX, "must be 64 lowercase hex digits"),
    bytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  })).superRefine((files, ctx) => {
    for (let i = 1; i < files.length; i++) {
      if (!(files[i - 1].path < files[i].path)) {
        ctx.addIssue({
          code: "custom",
          path: [i, "path"],
          message: `paths must be unique and sorted: ${JSON.stringify(files[i].path)} follows ${
            JSON.stringify(files[i - 1].path)
          }`,
        });
      }
    }
  }),
});

/** The content of `manifest.json`. */
export type CheckpointManifest = z.output<typeof CheckpointManifestSchema>;
/** One file of a manifest. */
export type ManifestFileEntry = CheckpointManifest["files"][number];

/**
 * Computes a checkpoint hash from its files' hashes (see the module doc for the exact definition).
 *
 * @example
 * ```ts
 * import { computeCheckpointHash } from "./checkpoint_manifest.ts";
 * computeCheckpointHash([{ path: "config.json", sha256: "ab".repeat(32) }]);
 * ```
 */
export function computeCheckpointHash(files: readonly { path: string; sha256: string }[]): string {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const hash = createHash("sha256");
  for (const f of sorted) hash.update(`${f.path}\t${f.sha256}\n`);
  return hash.digest("hex");
}

/** Why a manifest was refused (a readable reason, without the file name). */
export class CheckpointManifestError extends Error {
  /** @param reason what is wrong with the manifest. */
  constructor(readonly reason: string) {
    super(reason);
    this.name = "CheckpointManifestError";
  }
}

/**
 * Parses and validates `manifest.json` bytes, including that `checkpointHash` matches its file list.
 *
 * @throws {CheckpointManifestError} naming the offending field.
 */
export function parseCheckpointManifest(bytes: Uint8Array): CheckpointManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new CheckpointManifestError(`it is not valid UTF-8 JSON (${e instanceof Error ? e.message : e})`);
  }
  const parsed = CheckpointManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.length > 0 ? issue.path.join(".") : "(root)";
    throw new CheckpointManifestError(`field ${field} ${issue.message}`);
  }
  const manifest = parsed.data;
  const expected = computeCheckpointHash(manifest.files);
  if (expected !== manifest.checkpointHash) {
    throw new CheckpointManifestError(
      `field checkpointHash does not match its file list: current value is ${manifest.checkpointHash}, the files hash to ${expected}`,
    );
  }
  return manifest;
}
