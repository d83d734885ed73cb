/**
 * The field reference of `docs/config.md`, generated from the zod schemas (the single source of truth), so the
 * documentation cannot drift: a test compares the generated tables with the file.
 * Regenerate: `deno run --allow-read --allow-write src/config/config_reference.ts`.
 *
 * @module
 */
import type { z } from "zod";
import { PoyoKwargsSchema } from "../models/poyo_kwargs.ts";
import { QuerySpecSchema } from "../ursa/query_spec.ts";
import { BenchComputeSchema } from "./bench_compute.ts";
import { DataConfigSchema } from "./data_config.ts";
import { FinetuneFromSchema } from "./finetune_from.ts";
import { InfraConfigSchema } from "./infra_config.ts";
import { RunConfigSchema } from "./run_config.ts";
import { defaultOf, descriptionOf, unwrapSchema } from "./schema_tools.ts";
import { GradScalerSchema, TrainingConfigSchema } from "./training_config.ts";
import { PipelineShapeSchema } from "./training_pipeline.ts";

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  options?: z.ZodType[];
  items?: z.ZodType[];
  entries?: Record<string, unknown>;
  values?: unknown[];
}

function defOf(s: z.ZodType): Def {
  return s._zod.def as unknown as Def;
}

function bagOf(s: z.ZodType): Record<string, unknown> {
  return (s._zod as unknown as { bag?: Record<string, unknown> }).bag ?? {};
}

/** A short type description of a field schema, e.g. `integer > 0 | null`, `"adamw" \| "lamb"`. */
export function typeText(schema: z.ZodType): string {
  const def = defOf(schema);
  switch (def.type) {
    case "default":
    case "prefault":
    case "optional":
    case "readonly":
      return typeText(def.innerType!);
    case "nullable":
      return `${typeText(def.innerType!)} \\| null`;
    case "pipe":
      return typeText(def.in!);
    case "number": {
      const bag = bagOf(schema);
      const parts = [bag.format === "safeint" ? "integer" : "number"];
      if (typeof bag.exclusiveMinimum === "number") parts.push(`> ${bag.exclusiveMinimum}`);
      else if (typeof bag.minimum === "number" && bag.format !== "safeint") parts.push(`≥ ${bag.minimum}`);
      else if (typeof bag.minimum === "number" && bag.minimum >= 0) parts.push(`≥ ${bag.minimum}`);
      if (typeof bag.exclusiveMaximum === "number") parts.push(`< ${bag.exclusiveMaximum}`);
      else if (typeof bag.maximum === "number" && bag.maximum < Number.MAX_SAFE_INTEGER) {
        parts.push(`≤ ${bag.maximum}`);
      }
      return parts.join(" ");
    }
    case "string":
      return bagOf(schema).format === "regex" ? "string (pattern)" : "string";
    case "boolean":
      return "boolean";
    case "enum":
      return Object.values(def.entries ?? {}).map((v) => JSON.stringify(v)).join(" \\| ");
    case "literal":
      return (def.values ?? []).map((v) => JSON.stringify(v)).join(" \\| ");
    case "array":
      return `${typeText(def.element!)}[]`;
    case "tuple":
      return `[${(def.items ?? []).map(typeText).join(", ")}]`;
    case "union":
      return (def.options ?? []).map(typeText).join(" \\| ");
    case "object":
      return "object";
    case "record":
      return "object";
    case "custom":
      return "class \\| string";
    case "unknown":
      return schema.description ?? "any";
    default:
      return def.type;
  }
}

function isOptional(schema: z.ZodType): boolean {
  let s: z.ZodType | undefined = schema;
  for (let i = 0; s && i < 16; i++) {
    const def = defOf(s);
    if (def.type === "optional") return true;
    s = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
  }
  return false;
}

/** A markdown table of the fields of an object schema: name, type, default, meaning. */
export function fieldTable(schema: z.ZodType): string {
  const shape = defOf(unwrapSchema(schema)).shape ?? {};
  const rows = Object.entries(shape).map(([name, field]) => {
    const d = defaultOf(field);
    const def = d.has ? `\`${JSON.stringify(d.value)}\`` : isOptional(field) ? "optional" : "required";
    const meaning = (descriptionOf(field) ?? "").replaceAll("|", "\\|").replaceAll("<", "&lt;");
    return `| \`${name}\` | ${typeText(field).replaceAll("<", "&lt;")} | ${def} | ${meaning} |`;
  });
  return ["| field | type | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

/** Sections of the reference, in order. */
export const REFERENCE_SECTIONS: [title: string, schema: z.ZodType][] = [
  ["RunConfig", RunConfigSchema],
  ["DataConfig (`data`)", DataConfigSchema],
  ["QuerySpec (`data.ursaQuery`)", QuerySpecSchema],
  ["ModelConfig kwargs for POYO (`model.kwargs`)", PoyoKwargsSchema],
  ["TrainingConfig (`training`)", TrainingConfigSchema],
  ["BenchCompute (`training.benchCompute`)", BenchComputeSchema],
  ["GradScaler (`training.gradScaler`)", GradScalerSchema],
  ["InfraConfig (`infra`)", InfraConfigSchema],
  ["FinetuneFrom (`initFrom`)", FinetuneFromSchema],
  ["TrainingPipeline", PipelineShapeSchema],
];

/** Markers around the generated part of docs/config.md. */
export const REFERENCE_BEGIN = "<!-- BEGIN GENERATED FIELD REFERENCE (src/config/config_reference.ts) -->";
export const REFERENCE_END = "<!-- END GENERATED FIELD REFERENCE -->";

/** The generated field reference (between the markers). */
export function configReferenceMarkdown(): string {
  return [
    REFERENCE_BEGIN,
    "<!-- deno-fmt-ignore-start -->",
    ...REFERENCE_SECTIONS.map(([title, schema]) => `\n### ${title}\n\n${fieldTable(schema)}`),
    "",
    "<!-- deno-fmt-ignore-end -->",
    REFERENCE_END,
  ].join("\n");
}

/** Replaces the generated part of a document with the current reference. */
export function withCurrentReference(doc: string): string {
  const begin = doc.indexOf(REFERENCE_BEGIN);
  const end = doc.indexOf(REFERENCE_END);
  if (begin < 0 || end < begin) {
    throw new Error(
      `Cannot update the field reference as the document lacks the markers ${REFERENCE_BEGIN} … ${REFERENCE_END}`,
    );
  }
  return doc.slice(0, begin) + configReferenceMarkdown() + doc.slice(end + REFERENCE_END.length);
}

if (import.meta.main) {
  const path = new URL("../../docs/config.md", import.meta.url);
  await Deno.writeTextFile(path, withCurrentReference(await Deno.readTextFile(path)));
}
