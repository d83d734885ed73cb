import { Gpu } from "../../src/gpu/gpu.ts";

/** Runs `fn` on a fresh Gpu with early maps on, then on one with them off; each is destroyed afterwards. */
export async function forEachMapMode(fn: (gpu: Gpu, earlyMaps: boolean) => Promise<void>): Promise<void> {
  for (const earlyMaps of [true, false]) {
    const gpu = await Gpu.create({ earlyMaps });
    try {
      await fn(gpu, earlyMaps);
    } finally {
      gpu.destroy();
    }
  }
}
