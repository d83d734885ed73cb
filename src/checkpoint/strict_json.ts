/**
 * A strict, bounded JSON parser for untrusted headers (safetensors): unlike `JSON.parse` it refuses
 * duplicate object keys, bounds the nesting depth, never recurses on the JS stack, and tells integers
 * apart from numbers written with a fraction or exponent.
 *
 * @module
 */

/** A JSON number written with a fraction or an exponent (`1.5`, `1e3`): never a valid count or offset. */
export class JsonNonIntegerNumber {
  /** @param value the parsed value; @param text the number exactly as written. */
  constructor(readonly value: number, readonly text: string) {}
}

/** A value produced by {@link parseStrictJson}; objects have a null prototype. */
export type StrictJsonValue =
  | null
  | boolean
  | number
  | string
  | JsonNonIntegerNumber
  | StrictJsonValue[]
  | { [key: string]: StrictJsonValue };

/** Why {@link parseStrictJson} refused its input; `offset` is the character index of the problem. */
export class StrictJsonError extends Error {
  /** @param reason what is wrong; @param offset character index into the parsed text. */
  constructor(readonly reason: string, readonly offset: number) {
    super(`${reason} at character ${offset}`);
    this.name = "StrictJsonError";
  }
}

/** Limits of {@link parseStrictJson}. */
export interface StrictJsonOptions {
  /** Deepest allowed nesting of arrays/objects (default 64). */
  maxDepth?: number;
}

const NUMBER_PATTERN = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const INTEGER_SYNTAX = /^-?(?:0|[1-9][0-9]*)$/;

type Frame =
  | { kind: "array"; value: StrictJsonValue[] }
  | { kind: "object"; value: { [key: string]: StrictJsonValue }; keys: Set<string>; key: string | null };

/**
 * Parses one JSON document, followed only by JSON whitespace.
 *
 * @throws {StrictJsonError} on any syntax error, duplicate key, or nesting deeper than `maxDepth`.
 * @example
 * ```ts
 * import { parseStrictJson } from "./strict_json.ts";
 * const v = parseStrictJson('{"a": [1, 2.5]}');
 * ```
 */
export function parseStrictJson(text: string, options: StrictJsonOptions = {}): StrictJsonValue {
  const maxDepth = options.maxDepth ?? 64;
  let i = 0;
  const stack: Frame[] = [];
  let result: StrictJsonValue | undefined;
  let done = false;

  const skipWhitespace = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };

  const parseString = (): string => {
    // text[i] is the opening quote.
    const start = i;
    i++;
    let out = "";
    let runStart = i;
    while (true) {
      if (i >= text.length) throw new StrictJsonError("unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(runStart, i);
        i++;
        return out;
      }
      if (c < 0x20) throw new StrictJsonError("unescaped control character in string", i);
      if (c === 0x5c) {
        out += text.slice(runStart, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new StrictJsonError("invalid \\u escape", i);
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            throw new StrictJsonError("invalid escape sequence", i);
        }
        i += 2;
        runStart = i;
        continue;
      }
      i++;
    }
  };

  const parseNumber = (): number | JsonNonIntegerNumber => {
    NUMBER_PATTERN.lastIndex = i;
    const m = NUMBER_PATTERN.exec(text);
    if (m === null) throw new StrictJsonError("invalid number", i);
    i += m[0].length;
    const value = Number(m[0]);
    return INTEGER_SYNTAX.test(m[0]) ? value : new JsonNonIntegerNumber(value, m[0]);
  };

  const expectLiteral = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else throw new StrictJsonError("unexpected character", i);
  };

  /** Attaches a finished value to the enclosing frame (or makes it the result). */
  const emit = (value: StrictJsonValue) => {
    const top = stack[stack.length - 1];
    if (top === undefined) {
      result = value;
      done = true;
    } else if (top.kind === "array") {
      top.value.push(value);
    } else {
      top.value[top.key as string] = value;
      top.key = null;
    }
  };

  /** After a value inside a container: consumes `,` or the closing bracket(s). */
  const afterValue = () => {
    while (stack.length > 0) {
      skipWhitespace();
      const top = stack[stack.length - 1];
      const c = text[i];
      if (c === ",") {
        i++;
        return;
      }
      if ((top.kind === "array" && c === "]") || (top.kind === "object" && c === "}")) {
        i++;
        stack.pop();
        emit(top.value);
        continue;
      }
      throw new StrictJsonError(
        top.kind === "array" ? "expected ',' or ']'" : "expected ',' or '}'",
        i,
      );
    }
  };

  /** Inside an object, before a key: reads `"key":`. Returns false when the object closed instead. */
  const readKey = (frame: Extract<Frame, { kind: "object" }>, allowClose: boolean): boolean => {
    skipWhitespace();
    if (allowClose && text[i] === "}") {
      i++;
      stack.pop();
      emit(frame.value);
      afterValue();
      return false;
    }
    if (text[i] !== '"') throw new StrictJsonError("expected a string key", i);
    const keyStart = i;
    const key = parseString();
    if (frame.keys.has(key)) throw new StrictJsonError(`duplicate key ${JSON.stringify(key)}`, keyStart);
    frame.keys.add(key);
    frame.key = key;
    skipWhitespace();
    if (text[i] !== ":") throw new StrictJsonError("expected ':'", i);
    i++;
    return true;
  };

  skipWhitespace();
  while (!done) {
    // Position: expecting a value (inside the current frame or at top level).
    const top = stack[stack.length - 1];
    if (top?.kind === "object" && top.key === null) {
      if (!readKey(top, top.keys.size === 0)) continue;
    }
    skipWhitespace();
    if (i >= text.length) throw new StrictJsonError("unexpected end of input", i);
    const c = text[i];
    if (c === "{" || c === "[") {
      if (stack.length >= maxDepth) throw new StrictJsonError(`nesting deeper than ${maxDepth}`, i);
      i++;
      if (c === "[") {
        stack.push({ kind: "array", value: [] });
        skipWhitespace();
        if (text[i] === "]") {
          i++;
          const frame = stack.pop() as Frame;
          emit(frame.value);
          afterValue();
        }
      } else {
        stack.push({ kind: "object", value: Object.create(null), keys: new Set(), key: null });
      }
      continue;
    }
    let value: StrictJsonValue;
    if (c === '"') value = parseString();
    else if (c === "-" || (c >= "0" && c <= "9")) value = parseNumber();
    else if (c === "t") {
      expectLiteral("true");
      value = true;
    } else if (c === "f") {
      expectLiteral("false");
      value = false;
    } else if (c === "n") {
      expectLiteral("null");
      value = null;
    } else throw new StrictJsonError("unexpected character", i);
    emit(value);
    afterValue();
  }
  skipWhitespace();
  if (i !== text.length) throw new StrictJsonError("unexpected data after the JSON value", i);
  return result as StrictJsonValue;
}
