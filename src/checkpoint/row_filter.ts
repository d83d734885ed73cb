/**
 * A SQL-like filter over catalog rows, evaluated in process (so it reaches inside JSON columns such as a
 * run's metrics snapshot, and names an unknown column instead of failing deep in the database).
 *
 * Grammar (keywords case-insensitive):
 * ```
 * filter  := or
 * or      := and (OR and)*
 * and     := not (AND not)*
 * not     := NOT not | primary
 * primary := "(" filter ")" | operand [ cmp operand | IS [NOT] NULL | [NOT] IN "(" operand, ... ")"
 *                                     | [NOT] LIKE 'pattern' | [NOT] BETWEEN operand AND operand ]
 * cmp     := = | != | <> | < | <= | > | >=
 * operand := column | number | 'string' | TRUE | FALSE | NULL
 * column  := name ("." name)*      name := [A-Za-z_][A-Za-z0-9_]* | "any text" | `any text`
 * ```
 * A dotted column reads inside a JSON column (`metrics.val_loss`, `metrics."cognitive_load_eval@1/accuracy"`).
 * Comparisons follow SQL's three-valued logic: anything compared with NULL (or a missing JSON key) is unknown,
 * and a row is kept only when the filter is true. Numbers compare numerically (a numeric string counts as a
 * number), strings lexicographically; `LIKE` takes `%` and `_`.
 *
 * @module
 */

/** A parsed filter. */
export type FilterExpr =
  | { kind: "and" | "or"; left: FilterExpr; right: FilterExpr }
  | { kind: "not"; operand: FilterExpr }
  | { kind: "compare"; op: "=" | "!=" | "<" | "<=" | ">" | ">="; left: Operand; right: Operand }
  | { kind: "isNull"; operand: Operand; negated: boolean }
  | { kind: "in"; operand: Operand; values: Operand[]; negated: boolean }
  | { kind: "like"; operand: Operand; pattern: string; negated: boolean }
  | { kind: "between"; operand: Operand; low: Operand; high: Operand; negated: boolean }
  | { kind: "truthy"; operand: Operand };

/** A value in a filter: a column path or a literal. */
export type Operand =
  | { kind: "column"; path: string[] }
  | { kind: "literal"; value: string | number | boolean | null };

/** A filter that cannot be parsed or names a column the table does not have. */
export class RowFilterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RowFilterError";
  }
}

type Token =
  | { t: "name"; v: string; quoted: boolean; at: number }
  | { t: "number"; v: number; at: number }
  | { t: "string"; v: string; at: number }
  | { t: "op"; v: string; at: number };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new RowFilterError(
      `Cannot parse the filter as ${what} at position ${i + 1}: current filter is ${JSON.stringify(text)}`,
    );
  };
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let s = "";
      let j = i + 1;
      for (;;) {
        if (j >= text.length) fail("a string is not closed with '");
        if (text[j] === "'") {
          if (text[j + 1] === "'") {
            s += "'";
            j += 2;
            continue;
          }
          break;
        }
        s += text[j++];
      }
      out.push({ t: "string", v: s, at: i });
      i = j + 1;
    } else if (c === '"' || c === "`") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail(`a quoted name is not closed with ${c}`);
      out.push({ t: "name", v: text.slice(i + 1, end), quoted: true, at: i });
      i = end + 1;
    } else if (
      /[0-9]/.test(c) || (c === "-" && /[0-9.]/.test(text[i + 1] ?? "")) ||
      (c === "." && /[0-9]/.test(text[i + 1] ?? ""))
    ) {
      const m = /^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i))!;
      out.push({ t: "number", v: Number(m[0]), at: i });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      out.push({ t: "name", v: m[0], quoted: false, at: i });
      i += m[0].length;
    } else {
      const two = text.slice(i, i + 2);
      if (["<=", ">=", "!=", "<>", "=="].includes(two)) {
        out.push({ t: "op", v: two === "<>" ? "!=" : two === "==" ? "=" : two, at: i });
        i += 2;
      } else if ("=<>(),.".includes(c)) {
        out.push({ t: "op", v: c, at: i });
        i++;
      } else fail(`the character ${JSON.stringify(c)} is not part of the filter language`);
    }
  }
  return out;
}

const KEYWORDS = new Set(["and", "or", "not", "is", "null", "in", "like", "between", "true", "false"]);

/**
 * Parses a filter (see the module documentation).
 *
 * @throws {RowFilterError} naming the position and what was expected.
 * @example
 * ```ts
 * import { parseRowFilter } from "./row_filter.ts";
 * const f = parseRowFilter("status = 'finished' AND steps > 100");
 * ```
 */
export function parseRowFilter(text: string): FilterExpr {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos];
  const isKeyword = (tok: Token | undefined, word: string) =>
    tok?.t === "name" && !tok.quoted && tok.v.toLowerCase() === word;
  const isOp = (tok: Token | undefined, op: string) => tok?.t === "op" && tok.v === op;
  const fail = (expected: string): never => {
    const tok = peek();
    throw new RowFilterError(
      `Cannot parse the filter as ${expected} was expected ${
        tok ? `at position ${tok.at + 1} (found ${JSON.stringify(String(tok.v))})` : "at its end"
      }: current filter is ${JSON.stringify(text)}`,
    );
  };
  const keyword = (word: string) => {
    if (!isKeyword(peek(), word)) fail(word.toUpperCase());
    pos++;
  };
  const operand = (): Operand => {
    const tok = peek();
    if (!tok) return fail("a column or a value");
    if (tok.t === "number") return (pos++, { kind: "literal", value: tok.v });
    if (tok.t === "string") return (pos++, { kind: "literal", value: tok.v });
    if (tok.t === "name") {
      const word = tok.v.toLowerCase();
      if (!tok.quoted && (word === "true" || word === "false")) {
        return (pos++, { kind: "literal", value: word === "true" });
      }
      if (!tok.quoted && word === "null") return (pos++, { kind: "literal", value: null });
      if (!tok.quoted && KEYWORDS.has(word)) fail("a column or a value");
      pos++;
      const path = [tok.v];
      while (isOp(peek(), ".")) {
        pos++;
        const next = peek();
        if (next?.t !== "name") fail("a name after '.'");
        path.push((next as { v: string }).v);
        pos++;
      }
      return { kind: "column", path };
    }
    return fail("a column or a value");
  };
  const primary = (): FilterExpr => {
    if (isOp(peek(), "(")) {
      pos++;
      const inner = or();
      if (!isOp(peek(), ")")) fail("')'");
      pos++;
      return inner;
    }
    const left = operand();
    const tok = peek();
    if (tok?.t === "op" && ["=", "!=", "<", "<=", ">", ">="].includes(tok.v)) {
      pos++;
      return { kind: "compare", op: tok.v as "=", left, right: operand() };
    }
    if (isKeyword(tok, "is")) {
      pos++;
      const negated = isKeyword(peek(), "not");
      if (negated) pos++;
      keyword("null");
      return { kind: "isNull", operand: left, negated };
    }
    let negated = false;
    if (isKeyword(tok, "not")) {
      negated = true;
      pos++;
    }
    if (isKeyword(peek(), "in")) {
      pos++;
      if (!isOp(peek(), "(")) fail("'(' after IN");
      pos++;
      const values = [operand()];
      while (isOp(peek(), ",")) {
        pos++;
        values.push(operand());
      }
      if (!isOp(peek(), ")")) fail("')' closing the IN list");
      pos++;
      return { kind: "in", operand: left, values, negated };
    }
    if (isKeyword(peek(), "like")) {
      pos++;
      const pattern = peek();
      if (pattern?.t !== "string") fail("a 'pattern' after LIKE");
      pos++;
      return { kind: "like", operand: left, pattern: (pattern as { v: string }).v, negated };
    }
    if (isKeyword(peek(), "between")) {
      pos++;
      const low = operand();
      keyword("and");
      return { kind: "between", operand: left, low, high: operand(), negated };
    }
    if (negated) fail("IN, LIKE or BETWEEN after NOT");
    return { kind: "truthy", operand: left };
  };
  const not = (): FilterExpr => {
    if (isKeyword(peek(), "not")) {
      pos++;
      return { kind: "not", operand: not() };
    }
    return primary();
  };
  const and = (): FilterExpr => {
    let left = not();
    while (isKeyword(peek(), "and")) {
      pos++;
      left = { kind: "and", left, right: not() };
    }
    return left;
  };
  const or = (): FilterExpr => {
    let left = and();
    while (isKeyword(peek(), "or")) {
      pos++;
      left = { kind: "or", left, right: and() };
    }
    return left;
  };
  if (tokens.length === 0) fail("a condition");
  const expr = or();
  if (pos < tokens.length) fail("AND, OR or the end of the filter");
  return expr;
}

/** The column paths a filter reads. */
export function filterColumns(expr: FilterExpr): string[][] {
  const out: string[][] = [];
  const op = (o: Operand) => {
    if (o.kind === "column") out.push(o.path);
  };
  const walk = (e: FilterExpr) => {
    switch (e.kind) {
      case "and":
      case "or":
        walk(e.left);
        walk(e.right);
        break;
      case "not":
        walk(e.operand);
        break;
      case "compare":
        op(e.left);
        op(e.right);
        break;
      case "in":
        op(e.operand);
        e.values.forEach(op);
        break;
      case "between":
        op(e.operand);
        op(e.low);
        op(e.high);
        break;
      default:
        op(e.operand);
    }
  };
  walk(expr);
  return out;
}

/** Reads a column path from a row: the first name is a column, the rest index into its JSON value. */
export function readPath(row: Record<string, unknown>, path: readonly string[]): unknown {
  let v: unknown = row[path[0]];
  for (const key of path.slice(1)) {
    if (typeof v === "string" && (v.startsWith("{") || v.startsWith("["))) {
      try {
        v = JSON.parse(v);
      } catch {
        return undefined;
      }
    }
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

type Tri = boolean | null;
type Scalar = string | number | boolean | null;

function scalar(v: unknown): Scalar {
  if (v === undefined || v === null) return null;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  return JSON.stringify(v);
}

function compare(a: Scalar, b: Scalar): number | null {
  if (a === null || b === null) return null;
  const na = typeof a === "number" ? a : typeof a === "string" && a.trim() !== "" ? Number(a) : NaN;
  const nb = typeof b === "number" ? b : typeof b === "string" && b.trim() !== "" ? Number(b) : NaN;
  if ((typeof a === "number" || typeof b === "number") && !Number.isNaN(na) && !Number.isNaN(nb)) {
    return na < nb ? -1 : na > nb ? 1 : 0;
  }
  if (typeof a === "boolean" || typeof b === "boolean") return a === b ? 0 : null;
  const sa = String(a), sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function likeRegExp(pattern: string): RegExp {
  let re = "^";
  for (const c of pattern) {
    re += c === "%" ? ".*" : c === "_" ? "." : c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`, "s");
}

function evaluate(expr: FilterExpr, row: Record<string, unknown>): Tri {
  const value = (o: Operand): Scalar => o.kind === "literal" ? o.value : scalar(readPath(row, o.path));
  const negate = (v: Tri, n: boolean): Tri => (v === null ? null : n ? !v : v);
  switch (expr.kind) {
    case "and": {
      const l = evaluate(expr.left, row), r = evaluate(expr.right, row);
      return l === false || r === false ? false : l === null || r === null ? null : true;
    }
    case "or": {
      const l = evaluate(expr.left, row), r = evaluate(expr.right, row);
      return l === true || r === true ? true : l === null || r === null ? null : false;
    }
    case "not":
      return negate(evaluate(expr.operand, row), true);
    case "compare": {
      const c = compare(value(expr.left), value(expr.right));
      if (c === null) return null;
      return { "=": c === 0, "!=": c !== 0, "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0 }[expr.op];
    }
    case "isNull":
      return negate(value(expr.operand) === null, expr.negated);
    case "in": {
      const v = value(expr.operand);
      if (v === null) return null;
      let unknown = false;
      for (const o of expr.values) {
        const c = compare(v, value(o));
        if (c === 0) return negate(true, expr.negated);
        if (c === null) unknown = true;
      }
      return unknown ? null : negate(false, expr.negated);
    }
    case "like": {
      const v = value(expr.operand);
      return v === null ? null : negate(likeRegExp(expr.pattern).test(String(v)), expr.negated);
    }
    case "between": {
      const v = value(expr.operand);
      const lo = compare(v, value(expr.low)), hi = compare(v, value(expr.high));
      if (lo === null || hi === null) return null;
      return negate(lo >= 0 && hi <= 0, expr.negated);
    }
    case "truthy": {
      const v = value(expr.operand);
      return v === null ? null : typeof v === "boolean" ? v : typeof v === "number" ? v !== 0 : v.length > 0;
    }
  }
}

/**
 * A filter ready to apply: parsed, and checked against the table's columns (`columns`, e.g. from its
 * schema) so that a misspelt column is refused with the list of columns instead of matching nothing.
 *
 * @throws {RowFilterError} for a syntax error or an unknown column.
 * @example
 * ```ts
 * import { compileRowFilter } from "./row_filter.ts";
 * const keep = compileRowFilter("metrics.val_loss < 1.1 AND status = 'finished'", ["status", "metrics"], "runs");
 * rows.filter(keep);
 * ```
 */
export function compileRowFilter(
  text: string,
  columns: readonly string[],
  table: string,
): (row: Record<string, unknown>) => boolean {
  const expr = parseRowFilter(text);
  const known = new Set(columns);
  for (const path of filterColumns(expr)) {
    if (!known.has(path[0])) {
      throw new RowFilterError(
        `Cannot filter ${table} by ${path.join(".")} as the table has no column ${
          JSON.stringify(path[0])
        }: ` +
          `current columns are ${[...known].sort().join(", ")}`,
      );
    }
  }
  return (row) => evaluate(expr, row) === true;
}
