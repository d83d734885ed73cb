/**
 * WebGPU adapter and device acquisition.
 *
 * Requests the adapter's real limits (WebGPU hands out conservative defaults unless asked) and the
 * features Orion's kernels use, and records a description of the adapter that a checkpoint can store.
 *
 * @module
 */

/** Features Orion's kernels may use, as acquired on this device. */
export interface GpuFeatures {
  /** `shader-f16`: f16 storage and arithmetic in WGSL (`enable f16;`). */
  shaderF16: boolean;
  /** `subgroups`: subgroup operations (size differs per adapter; never assume it). */
  subgroups: boolean;
  /** `timestamp-query`: pass-level timestamp writes for kernel timing. */
  timestampQuery: boolean;
}

/** A JSON-serializable description of the adapter (stored in checkpoints and benchmark output). */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** Features the adapter lists (sorted). */
  adapterFeatures: string[];
  /** Features requested and granted on the device (sorted). */
  deviceFeatures: string[];
  /** Every numeric limit granted on the device. */
  limits: Record<string, number>;
  /** Deno's version (WebGPU behaviour is tied to the wgpu bundled with it). */
  deno: string;
}

/** A device together with what was acquired. */
export interface AcquiredDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  features: GpuFeatures;
  description: AdapterDescription;
}

/** Options for {@linkcode acquireDevice}. */
export interface AcquireOptions {
  /** Ask for a high-performance (discrete) adapter; default true. */
  highPerformance?: boolean;
  /** Skip optional features even when offered (tests of fallback paths). */
  disableFeatures?: Array<keyof GpuFeatures>;
}

/** Thrown when no WebGPU adapter exists; the message carries the install hint. */
export class NoAdapterError extends Error {
  override name = "NoAdapterError";
}

const INSTALL_HINT = "install a GPU driver with Vulkan support, or Mesa's software adapter with " +
  "`apt-get install mesa-vulkan-drivers` (or run `bash scripts/setup.sh`); " +
  "`DENO_WEBGPU_BACKEND=vulkan` forces the Vulkan backend";

function numericLimits(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // GPUSupportedLimits exposes its fields as prototype getters, so walk the prototype.
  for (const key of Object.keys(Object.getPrototypeOf(limits)).concat(Object.keys(limits))) {
    const value = (limits as unknown as Record<string, unknown>)[key];
    if (typeof value === "number") out[key] = value;
  }
  return out;
}

/**
 * Acquires the first WebGPU adapter and a device with its full limits and Orion's optional features.
 *
 * @example
 * ```ts
 * import { acquireDevice } from "./device.ts";
 * const { device, description } = await acquireDevice();
 * console.log(description.description);
 * device.destroy();
 * ```
 */
export async function acquireDevice(options: AcquireOptions = {}): Promise<AcquiredDevice> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new NoAdapterError(
      `Cannot acquire a WebGPU device as this runtime has no navigator.gpu; ${INSTALL_HINT}`,
    );
  }
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.highPerformance === false ? "low-power" : "high-performance",
  });
  if (!adapter) {
    throw new NoAdapterError(`Cannot acquire a WebGPU device as no adapter was found; ${INSTALL_HINT}`);
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const adapterFeatures = [...adapter.features].map(String).sort();
  const wanted: string[] = [];
  if (!disabled.has("shaderF16") && adapter.features.has("shader-f16")) wanted.push("shader-f16");
  if (!disabled.has("timestampQuery") && adapter.features.has("timestamp-query")) {
    wanted.push("timestamp-query");
  }
  const requiredLimits: Record<string, number> = {};
  const adapterLimits = numericLimits(adapter.limits);
  for (const [key, value] of Object.entries(adapterLimits)) requiredLimits[key] = value;

  // `subgroups` works on some adapters when requested by name even though it is not listed; try it first.
  let device: GPUDevice | undefined;
  if (!disabled.has("subgroups")) {
    try {
      device = await adapter.requestDevice({
        requiredFeatures: [...wanted, "subgroups"] as GPUFeatureName[],
        requiredLimits,
      });
    } catch {
      device = undefined;
    }
  }
  device ??= await adapter.requestDevice({ requiredFeatures: wanted as GPUFeatureName[], requiredLimits });

  const info = adapter.info;
  const infoRecord = info as unknown as Record<string, unknown>;
  const features: GpuFeatures = {
    shaderF16: device.features.has("shader-f16"),
    subgroups: device.features.has("subgroups"),
    timestampQuery: device.features.has("timestamp-query"),
  };
  const description: AdapterDescription = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: Boolean(infoRecord.isFallbackAdapter),
    subgroupMinSize: Number(infoRecord.subgroupMinSize ?? 0),
    subgroupMaxSize: Number(infoRecord.subgroupMaxSize ?? 0),
    adapterFeatures,
    deviceFeatures: [...device.features].map(String).sort(),
    limits: numericLimits(device.limits),
    deno: Deno.version.deno,
  };
  return { adapter, device, features, description };
}
