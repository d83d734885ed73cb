import assert from "node:assert/strict";
import {
  configReferenceMarkdown,
  REFERENCE_BEGIN,
  REFERENCE_END,
} from "../../src/config/config_reference.ts";

Deno.test("docs/config.md's field reference matches the schemas (regenerate with src/config/config_reference.ts)", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/config.md", import.meta.url));
  const section = doc.slice(doc.indexOf(REFERENCE_BEGIN), doc.indexOf(REFERENCE_END) + REFERENCE_END.length);
  assert.equal(section, configReferenceMarkdown());
  for (
    const field of [
      "batchSize",
      "freezeUntilStep",
      "weightOverrides",
      "gpusPerNode",
      "partialSubset",
      "dimHead",
    ]
  ) {
    assert.match(section, new RegExp(`\\| \`${field}\` \\|`));
  }
});
