/** A distinct, reproducible word pattern for read-back tests: word i is (i + 1) × 2654435761 xor `salt`. */
export function bitPattern(n: number, salt: number): Uint32Array<ArrayBuffer> {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.imul(i + 1, 2654435761) ^ salt;
  return a;
}
