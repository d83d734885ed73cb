/**
 * Serialized config versions and the migrations between them.
 *
 * - Version 0 (before typed configs): a flat run object with snake_case keys (`batch_size`, `train_window`,
 *   `ursa_query`, model kwargs such as `dim_head`), `model.cls` as a name, Lightning-1 precision spellings
 *   (`"32"`, `"16"`, `"bf16"`), `config_version: 0` at the top and no hash.
 * - Version 1 (current): `{ config_version: 1, kind: "run" | "pipeline", hash, config }` with camelCase keys.
 *
 * @module
 */
import { ConfigError, problem } from "./problem.ts";

/**
 * The version {@link serializeConfig} writes.
 *
 * @example
 * ```ts
 * import { CURRENT_CONFIG_VERSION } from "./config_migrations.ts";
 * console.log(`configs are written as version ${CURRENT_CONFIG_VERSION}`);
 * ```
 */
export const CURRENT_CONFIG_VERSION = 1;

/** One step of the migration table: turns a document of version `from` into one of version `from + 1`. */
export interface ConfigMigration {
  from: number;
  describe: string;
  migrate(doc: Record<string, unknown>): Record<string, unknown>;
}

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function camelKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), camelKeys(v)]));
  }
  return value;
}

const LEGACY_PRECISION: Record<string, string> = { "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed" };

/** The migration table, in order; `MIGRATIONS[i].from === i`. */
export const MIGRATIONS: readonly ConfigMigration[] = [
  {
    from: 0,
    describe: "snake_case keys → camelCase; Lightning-1 precision names; wrap into { kind, config }",
    migrate(doc) {
      const { config_version: _v, ...run } = doc;
      const config = camelKeys(run) as Record<string, unknown>;
      const training = config.training as Record<string, unknown> | undefined;
      if (training && typeof training.precision === "string" && training.precision in LEGACY_PRECISION) {
        training.precision = LEGACY_PRECISION[training.precision];
      } else if (
        training && typeof training.precision === "number" && String(training.precision) in LEGACY_PRECISION
      ) {
        training.precision = LEGACY_PRECISION[String(training.precision)];
      }
      return { config_version: 1, kind: "run", config };
    },
  },
];

/**
 * Migrates a serialized document to {@link CURRENT_CONFIG_VERSION}. Throws a {@link ConfigError} naming the
 * version needed when the document is newer than this Orion or has no version.
 */
export function migrateConfigDocument(doc: Record<string, unknown>): Record<string, unknown> {
  const version = doc.config_version;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 0) {
    throw new ConfigError("serialized config", [problem(
      "config_version",
      version,
      `Cannot read a serialized config without an integer config_version: current value is ${
        JSON.stringify(version)
      }`,
      `add "config_version": ${CURRENT_CONFIG_VERSION} (the current version) or the version the file was written with`,
    )]);
  }
  if (version > CURRENT_CONFIG_VERSION) {
    throw new ConfigError("serialized config", [problem(
      "config_version",
      version,
      `Cannot read config_version ${version} as this Orion reads config versions 0 to ${CURRENT_CONFIG_VERSION}: current value is ${version}`,
      `use an Orion release that reads config_version ${version} (this file was written by a newer Orion)`,
    )]);
  }
  let current = doc;
  for (let v = version; v < CURRENT_CONFIG_VERSION; v++) current = MIGRATIONS[v].migrate(current);
  return current;
}
