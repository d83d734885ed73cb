/**
 * Word vocabularies of the model (channel ids such as `p042/Fz`, session ids such as `p042/s1`): lists
 * whose position is the embedding row, with index 0 reserved for padding. A new vocabulary is the sorted
 * list of its words; extending an existing one (finetuning on new participants) keeps every known word at
 * its index and appends the new words, sorted.
 *
 * @module
 */

/** The padding word at index 0. */
export const PAD_WORD = "<pad>";

/**
 * Builds a vocabulary of `words`, or extends `existing` with the words it lacks.
 *
 * @example
 * ```ts
 * const v1 = buildVocabulary(["p001/Fz", "p001/Cz"]);          // ["<pad>", "p001/Cz", "p001/Fz"]
 * const v2 = buildVocabulary(["p002/Fz", "p001/Fz"], v1);      // ["<pad>", "p001/Cz", "p001/Fz", "p002/Fz"]
 * ```
 */
export function buildVocabulary(words: Iterable<string>, existing?: readonly string[]): string[] {
  if (existing) {
    if (existing[0] !== PAD_WORD) {
      throw new Error(
        `Cannot extend a vocabulary whose index 0 is not '${PAD_WORD}': current value is '${existing[0]}'`,
      );
    }
    const seen = new Set(existing);
    if (seen.size !== existing.length) throw new Error("Cannot extend a vocabulary that lists a word twice");
    const fresh = [...new Set(words)].filter((w) => !seen.has(w)).sort();
    return [...existing, ...fresh];
  }
  return [PAD_WORD, ...[...new Set(words)].filter((w) => w !== PAD_WORD).sort()];
}

/** word → index. */
export function vocabularyIndex(vocabulary: readonly string[]): Map<string, number> {
  return new Map(vocabulary.map((w, i) => [w, i]));
}
