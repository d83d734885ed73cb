/**
 * The embedded catalog (Ursa): a directory of LanceDB tables plus a small generic table API that every
 * module uses for its own tables (`recordings`, `derived_assets`, `labels`, `signals` here; `runs`,
 * `checkpoints`, `benchmark_results` elsewhere).
 *
 * Rows are plain objects. Column types come from an explicit Arrow schema when one is given, otherwise they
 * are inferred from the values: string → Utf8, number → Float64, boolean → Bool, Uint8Array → Binary,
 * string[] → List<Utf8>, number[] → List<Float64>, any other object → Utf8 holding JSON (parsed back on
 * read). The key column given to `upsert` is remembered in the table's schema metadata
 * (`orion.key_column`), so `get(table, key)` needs no column name.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import type { Connection, Table } from "@lancedb/lancedb";
import { type LanceDbModule, loadLanceDb } from "./lancedb_module.ts";

type ArrowTableLike = ReturnType<LanceDbModule["makeArrowTable"]>;

/** One row as stored or read: column name → value. */
export type CatalogRow = Record<string, unknown>;

/** Schema metadata key naming a table's key column. */
export const KEY_COLUMN_METADATA = "orion.key_column";
/** Schema metadata key listing (comma-separated) the columns that hold JSON text. */
export const JSON_COLUMNS_METADATA = "orion.json_columns";

/** Options of {@link Catalog.query}. */
export interface CatalogQueryOptions {
  /** Columns to read (default: all). Reading fewer columns reads fewer bytes. */
  columns?: string[];
  /** Most rows to return. */
  limit?: number;
}

/** Quotes a string as a SQL literal for LanceDB filters. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** The default catalog directory: `${ORION_HOME ?? "./.orion"}/catalog`. */
export function defaultCatalogDir(): string {
  let home: string | undefined;
  try {
    home = Deno.env.get("ORION_HOME");
  } catch {
    home = undefined;
  }
  return `${home && home.length > 0 ? home : "./.orion"}/catalog`;
}

/**
 * Opens (creating if needed) the catalog in `dir` (default {@link defaultCatalogDir}).
 *
 * @example
 * ```ts
 * const catalog = await openCatalog("/tmp/orion-example/catalog");
 * await catalog.upsert("runs", [{ run_id: "r1", status: "running" }], "run_id");
 * console.log(await catalog.get("runs", "r1"));
 * ```
 */
export async function openCatalog(dir: string = defaultCatalogDir()): Promise<Catalog> {
  await Deno.mkdir(dir, { recursive: true });
  const lancedb = await loadLanceDb();
  const db = await lancedb.connect(dir);
  return new Catalog(dir, db);
}

/** A catalog directory and its tables. Create with {@link openCatalog}. */
export class Catalog {
  readonly dir: string;
  readonly #db: Connection;
  readonly #tables = new Map<string, Table>();

  constructor(dir: string, db: Connection) {
    this.dir = dir;
    this.#db = db;
  }

  /** Names of the tables present, sorted. */
  async tableNames(): Promise<string[]> {
    return (await this.#db.tableNames()).sort();
  }

  /** Whether `name` exists. */
  async hasTable(name: string): Promise<boolean> {
    if (this.#tables.has(name)) return true;
    return (await this.#db.tableNames()).includes(name);
  }

  /** The LanceDB table `name` (for advanced use); throws a clear error when it does not exist. */
  async table(name: string): Promise<Table> {
    const cached = this.#tables.get(name);
    if (cached) return cached;
    if (!(await this.hasTable(name))) {
      throw new Error(
        `Cannot open catalog table '${name}' as it does not exist in ${this.dir}: current tables are ` +
          `[${(await this.tableNames()).join(", ")}]; write rows to it first`,
      );
    }
    const table = await this.#db.openTable(name);
    this.#tables.set(name, table);
    return table;
  }

  /** Creates `name` with `schema` when missing and returns it. */
  async ensureTable(name: string, schema: arrow.Schema): Promise<Table> {
    if (await this.hasTable(name)) return await this.table(name);
    const table = await this.#db.createEmptyTable(name, schema, { mode: "create", existOk: true });
    this.#tables.set(name, table);
    return table;
  }

  /** The Arrow schema of `name`. */
  async schema(name: string): Promise<arrow.Schema> {
    return await (await this.table(name)).schema();
  }

  /** Appends rows (no key check). Creates the table (inferring or using `schema`) when missing. */
  async insert(name: string, rows: CatalogRow[], options: { schema?: arrow.Schema } = {}): Promise<void> {
    if (rows.length === 0) return;
    const table = await this.#tableFor(name, rows, options.schema);
    await table.add(await this.#toArrow(table, name, rows));
  }

  /**
   * Inserts rows, replacing existing rows whose `keyColumn` matches. Creates the table when missing and
   * records `keyColumn` in its schema metadata.
   */
  async upsert(
    name: string,
    rows: CatalogRow[],
    keyColumn: string,
    options: { schema?: arrow.Schema } = {},
  ): Promise<void> {
    if (rows.length === 0) return;
    const seen = new Set<unknown>();
    for (const [i, row] of rows.entries()) {
      const key = row[keyColumn];
      if (key === undefined || key === null) {
        throw new Error(
          `Cannot upsert into catalog table '${name}' as row ${i} has no key column '${keyColumn}': ` +
            `current value is ${String(key)}`,
        );
      }
      if (seen.has(key)) {
        throw new Error(
          `Cannot upsert into catalog table '${name}' as key '${String(key)}' appears twice in one call`,
        );
      }
      seen.add(key);
    }
    const table = await this.#tableFor(name, rows, options.schema, keyColumn);
    const data = await this.#toArrow(table, name, rows);
    await table.mergeInsert(keyColumn).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(data);
  }

  /** Rows of `name` matching the SQL `filter` (all rows without one); `[]` when the table is missing. */
  async query(name: string, filter?: string, options: CatalogQueryOptions = {}): Promise<CatalogRow[]> {
    if (!(await this.hasTable(name))) return [];
    const table = await this.table(name);
    let query = table.query();
    if (filter) query = query.where(filter);
    if (options.columns) query = query.select(options.columns);
    if (options.limit !== undefined) query = query.limit(options.limit);
    const jsonColumns = jsonColumnsOf(await table.schema());
    const rows = await query.toArray();
    return rows.map((row) => plainRow(row, jsonColumns));
  }

  /** The row of `name` whose key column equals `key`, or `undefined`. */
  async get(name: string, key: string | number, keyColumn?: string): Promise<CatalogRow | undefined> {
    if (!(await this.hasTable(name))) return undefined;
    const column = keyColumn ?? (await this.schema(name)).metadata.get(KEY_COLUMN_METADATA);
    if (!column) {
      throw new Error(
        `Cannot get a row of catalog table '${name}' by key as the table records no key column: ` +
          `pass keyColumn, or create the table through upsert(name, rows, keyColumn)`,
      );
    }
    const literal = typeof key === "number" ? String(key) : sqlString(key);
    const rows = await this.query(name, `${column} = ${literal}`, { limit: 2 });
    return rows[0];
  }

  /** Number of rows of `name` (matching `filter`); 0 when the table is missing. */
  async count(name: string, filter?: string): Promise<number> {
    if (!(await this.hasTable(name))) return 0;
    return await (await this.table(name)).countRows(filter);
  }

  /** Deletes rows of `name` matching `filter`. */
  async delete(name: string, filter: string): Promise<void> {
    if (!(await this.hasTable(name))) return;
    await (await this.table(name)).delete(filter);
  }

  /** Compacts the fragments of `name` (or of every table) and removes superseded versions. */
  async optimize(name?: string): Promise<void> {
    const names = name ? [name] : await this.tableNames();
    for (const n of names) {
      await (await this.table(n)).optimize({ cleanupOlderThan: new Date(Date.now() + 1000) });
    }
  }

  /** Closes the connection; the catalog is unusable afterwards. */
  close(): void {
    for (const table of this.#tables.values()) table.close();
    this.#tables.clear();
    this.#db.close();
  }

  async #tableFor(name: string, rows: CatalogRow[], schema?: arrow.Schema, keyColumn?: string) {
    if (await this.hasTable(name)) return await this.table(name);
    let base = schema ?? inferSchema(name, rows);
    if (keyColumn) {
      if (!base.fields.some((f) => f.name === keyColumn)) {
        throw new Error(
          `Cannot create catalog table '${name}' keyed by '${keyColumn}' as the schema has no such ` +
            `column: current columns are [${base.fields.map((f) => f.name).join(", ")}]`,
        );
      }
      const metadata = new Map(base.metadata);
      metadata.set(KEY_COLUMN_METADATA, keyColumn);
      base = new arrow.Schema(base.fields, metadata);
    }
    return await this.ensureTable(name, base);
  }

  async #toArrow(table: Table, name: string, rows: CatalogRow[]): Promise<ArrowTableLike> {
    const schema = await table.schema();
    const known = new Set(schema.fields.map((f) => f.name));
    for (const row of rows) {
      for (const column of Object.keys(row)) {
        if (!known.has(column)) {
          throw new Error(
            `Cannot write to catalog table '${name}' as column '${column}' is not in its schema: current ` +
              `columns are [${[...known].join(", ")}]`,
          );
        }
      }
    }
    const lancedb = await loadLanceDb();
    return lancedb.makeArrowTable(prepareRows(schema, rows), { schema });
  }
}

function jsonColumnsOf(schema: arrow.Schema): Set<string> {
  const listed = schema.metadata.get(JSON_COLUMNS_METADATA);
  return new Set(listed ? listed.split(",").filter((s) => s.length > 0) : []);
}

/** Infers an Arrow schema from plain rows (see the module documentation for the mapping). */
export function inferSchema(name: string, rows: CatalogRow[]): arrow.Schema {
  const types = new Map<string, { kind: string; row: number }>();
  rows.forEach((row, i) => {
    for (const [column, value] of Object.entries(row)) {
      if (value === null || value === undefined) {
        if (!types.has(column)) types.set(column, { kind: "unknown", row: i });
        continue;
      }
      const kind = valueKind(value);
      const prior = types.get(column);
      if (!prior || prior.kind === "unknown") types.set(column, { kind, row: i });
      else if (prior.kind !== kind) {
        throw new Error(
          `Cannot infer the type of column '${column}' of catalog table '${name}' as its values mix ` +
            `${prior.kind} (row ${prior.row}) and ${kind} (row ${i}); pass an explicit schema`,
        );
      }
    }
  });
  const jsonColumns: string[] = [];
  const fields = [...types.entries()].map(([column, { kind }]) => {
    if (kind === "json") jsonColumns.push(column);
    return new arrow.Field(column, arrowTypeOf(kind), true);
  });
  const metadata = new Map<string, string>();
  if (jsonColumns.length > 0) metadata.set(JSON_COLUMNS_METADATA, jsonColumns.join(","));
  return new arrow.Schema(fields, metadata);
}

function valueKind(value: unknown): string {
  if (typeof value === "string") return "string";
  if (typeof value === "number") return "number";
  if (typeof value === "bigint") return "number";
  if (typeof value === "boolean") return "boolean";
  if (value instanceof Uint8Array) return "binary";
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string")) {
    return "string[]";
  }
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "number")) {
    return "number[]";
  }
  return "json";
}

function arrowTypeOf(kind: string): arrow.DataType {
  switch (kind) {
    case "number":
      return new arrow.Float64();
    case "boolean":
      return new arrow.Bool();
    case "binary":
      return new arrow.Binary();
    case "string[]":
      return new arrow.List(new arrow.Field("item", new arrow.Utf8(), true));
    case "number[]":
      return new arrow.List(new arrow.Field("item", new arrow.Float64(), true));
    default:
      return new arrow.Utf8(); // string, json, unknown (all-null)
  }
}

/**
 * Prepares plain rows for `schema`: JSON columns stringified, 64-bit integer columns as BigInt, missing
 * columns as null. Type checks use numeric type ids because LanceDB's schemas come from its own (CommonJS)
 * copy of apache-arrow, whose classes differ from the ESM ones imported here.
 */
export function prepareRows(schema: arrow.Schema, rows: CatalogRow[]): CatalogRow[] {
  const jsonColumns = jsonColumnsOf(schema);
  return rows.map((row) => {
    const out: CatalogRow = {};
    for (const field of schema.fields) {
      const v = row[field.name];
      const type = field.type as { typeId: number; bitWidth?: number };
      if (v === undefined || v === null) out[field.name] = null;
      else if (jsonColumns.has(field.name)) out[field.name] = typeof v === "string" ? v : JSON.stringify(v);
      else if (type.typeId === arrow.Type.Int && type.bitWidth === 64) {
        out[field.name] = typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)));
      } else out[field.name] = v;
    }
    return out;
  });
}

function plainValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "bigint") return Number(value);
  if (value instanceof Uint8Array) return value;
  if (typeof value === "object" && value !== null && "toArray" in value) {
    const array = (value as { toArray(): ArrayLike<unknown> }).toArray();
    return Array.from(array, plainValue);
  }
  return value;
}

function plainRow(row: unknown, jsonColumns: Set<string>): CatalogRow {
  const record = (row as { toJSON(): Record<string, unknown> }).toJSON();
  const out: CatalogRow = {};
  for (const [k, v] of Object.entries(record)) {
    out[k] = jsonColumns.has(k) && typeof v === "string" ? JSON.parse(v) : plainValue(v);
  }
  return out;
}
