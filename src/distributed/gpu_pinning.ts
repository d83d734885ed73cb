/**
 * One rank per GPU: Deno's WebGPU has no adapter index and NVIDIA's Vulkan driver ignores
 * `CUDA_VISIBLE_DEVICES`, so ranks are pinned through Mesa's Vulkan device-select layer:
 * `DRI_PRIME=pci-DDDD_BB_SS_F` (the GPU's PCI bus id) puts that GPU first and wgpu takes it.
 * GPUs are listed with `nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader`; with no GPU, every rank
 * shares the software adapter (lavapipe).
 *
 * @module
 */

/** Where one local rank runs. */
export interface GpuPin {
  localRank: number;
  /** PCI bus id as nvidia-smi prints it, or null on the software adapter. */
  pciBusId: string | null;
  /** Value for `DRI_PRIME`, or null (software adapter). */
  driPrime: string | null;
}

/**
 * Converts an nvidia-smi bus id (`00000000:1B:00.0`) to Mesa's `DRI_PRIME` form (`pci-0000_1b_00_0`),
 * exactly like `gpu_bus` in the device bootstrap script.
 */
export function driPrimeFromBusId(busId: string): string {
  const lower = busId.trim().toLowerCase().replace(/^0000([0-9a-f]{4}):/, "$1:");
  const match = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-9])$/.exec(lower);
  if (!match) {
    throw new Error(
      `Cannot pin a rank to GPU as its PCI bus id is not in DDDD:BB:SS.F form: current value is "${busId}"`,
    );
  }
  return `pci-${match[1]}_${match[2]}_${match[3]}_${match[4]}`;
}

/** Bus ids of the NVIDIA GPUs on this host, in nvidia-smi order; empty when nvidia-smi is absent or fails. */
export async function detectGpuBusIds(): Promise<string[]> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=pci.bus_id", "--format=csv,noheader"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return [];
    return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

/**
 * Pins local ranks 0..localWorldSize−1 to GPUs 0..localWorldSize−1, or all to the software adapter when
 * no GPU was found. Refuses to oversubscribe: fewer GPUs than ranks is an error.
 */
export function planGpuPins(localWorldSize: number, busIds: readonly string[]): GpuPin[] {
  if (busIds.length > 0 && busIds.length < localWorldSize) {
    throw new Error(
      `Cannot pin ${localWorldSize} ranks to GPUs as only ${busIds.length} GPUs were found: current value of ` +
        `gpusPerNode is ${localWorldSize}; lower gpusPerNode (InfraConfig) to at most ${busIds.length}`,
    );
  }
  return Array.from({ length: localWorldSize }, (_, localRank) => {
    const pciBusId = busIds[localRank] ?? null;
    return { localRank, pciBusId, driPrime: pciBusId === null ? null : driPrimeFromBusId(pciBusId) };
  });
}
