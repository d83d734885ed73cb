/**
 * The GPU runtime: a device with its buffer pool, pipeline cache, uniform and bind-group caches, and a
 * recorder that puts every dispatch of a step into one command encoder and one `queue.submit`.
 *
 * Nothing here waits on the GPU except {@linkcode Gpu.sync} and the promises returned by
 * {@linkcode Gpu.readback}, which resolve after the submit that carries the copy. Mapping blocks the thread
 * until the GPU has run everything submitted so far, so callers batch read-backs and keep steps in flight;
 * the bytes are taken when the map call returns ({@linkcode Gpu.earlyMaps}), not ~10 ms later when Deno
 * resolves its promise.
 *
 * @module
 */
import { acquireDevice, type AcquireOptions, type AdapterDescription, type GpuFeatures } from "./device.ts";
import { BufferPool, type GpuBuffer, sizeClass } from "./buffer_pool.ts";
import { type CompiledKernel, KernelError, type KernelSpec, PipelineCache } from "./kernel.ts";
import { earlyMapsDisabledByEnv, mappedNow, probeEarlyMaps } from "./early_map.ts";
import type { StagedWrites } from "./staged_writes.ts";

/** A binding: a whole pooled buffer, or a byte range of one (offset aligned to 256). */
export type BufferBinding = GpuBuffer | { buffer: GpuBuffer; offset: number; size: number };

/** Per-kernel-family GPU time of the submits recorded while timing was on. */
export interface FamilyTimings {
  /** Nanoseconds per family, summed over timed submits. */
  ns: Record<string, number>;
  /** Number of timed submits summed. */
  submits: number;
}

interface PendingReadback {
  staging: GPUBuffer;
  size: number;
  /** Caller-owned destination ({@linkcode Gpu.readbackInto}); else a fresh ArrayBuffer. */
  into: Uint8Array | null;
  /** Settles with the destination's bytes (`into` itself when given). */
  resolve: (data: Uint8Array) => void;
  reject: (error: Error) => void;
  /** Copy the mapped bytes out in slices after later submits (see {@linkcode ReadbackOptions.spread}). */
  spread: boolean;
  /** {@linkcode Gpu.readbackMapped}: hand the mapped buffer to this instead of copying it out. */
  deferred?: (mapped: MappedReadback) => void;
  /** Map only at {@linkcode Gpu.mapHeldReadbacks}, not at the submit that carries the copy. */
  hold?: boolean;
}

/**
 * A read-back that is mapped but not yet copied out ({@linkcode Gpu.readbackMapped}): the caller copies it
 * when it is ready for the bytes, then the staging buffer is unmapped and reused. Call exactly one of
 * `copyTo` and `release`.
 */
export interface MappedReadback {
  /** Bytes read back. */
  readonly size: number;
  /** Copies the bytes into `into` (≥ `size` bytes) and unmaps; throws a pending GPU validation error. */
  copyTo(into: Uint8Array): void;
  /**
   * Copies bytes [start, end) into `into` at the same offsets and keeps the buffer mapped, so a large
   * read-back can be copied out in parts between other work; `release` unmaps it afterwards.
   */
  copyRange(into: Uint8Array, start: number, end: number): void;
  /** Unmaps without copying (the bytes are not needed). */
  release(): void;
}

/** Options of {@linkcode Gpu.readback}. */
export interface ReadbackOptions {
  /**
   * Ride on the stream's existing sync points instead of adding one: mapping a buffer makes the thread
   * wait for all GPU work queued so far, so a spread read-back is mapped together with the next ordinary
   * read-back (the trainer's metrics, which wait anyway), and its bytes are copied to the host in slices of
   * {@linkcode SPREAD_SLICE_BYTES}, one right after each later submit — when the GPU has just been handed a
   * step of work — instead of all at once right after the GPU ran dry (a 21 MB copy there is GPU idle
   * time). Bounded latency: the map happens at the latest {@linkcode SPREAD_MAP_DEADLINE_MS} after the
   * submit, the copy at the latest {@linkcode SPREAD_DEADLINE_MS} after the map.
   * For large snapshots (checkpoints); small read-backs (metrics) map and copy at once.
   */
  spread?: boolean;
}

/** Options of {@linkcode Gpu.readbackMapped}. */
export interface MappedReadbackOptions {
  /** Leave the map to {@linkcode Gpu.mapHeldReadbacks} instead of the submit that carries the copy. */
  hold?: boolean;
}

/** Bytes copied out of a spread read-back per submit. */
export const SPREAD_SLICE_BYTES = 4 << 20;
/** A spread read-back finishes its copy at the latest this long after its map completed. */
export const SPREAD_DEADLINE_MS = 250;
/**
 * A spread read-back waiting for the next ordinary read-back to be mapped with is mapped on its own at the
 * latest this long after its submit (the trainer reads metrics back every ≤ 100 steps).
 */
export const SPREAD_MAP_DEADLINE_MS = 2000;

/** A mapped spread read-back being copied out slice by slice. */
interface SpreadCopy {
  readback: PendingReadback;
  data: Uint8Array;
  copied: number;
}

const MAX_QUERIES = 4096;

/** One recorded command of a captured step (see {@linkcode Gpu.beginCapture}). */
export type CapturedCommand =
  | {
    kind: "dispatch";
    kernel: CompiledKernel;
    bindGroup: GPUBindGroup;
    bindGroupId: number;
    x: number;
    y: number;
    z: number;
    family: string;
  }
  | {
    kind: "copy";
    src: GPUBuffer;
    srcId: number;
    srcOffset: number;
    dst: GPUBuffer;
    dstId: number;
    dstOffset: number;
    bytes: number;
  }
  | { kind: "clear"; buffer: GPUBuffer; bufferId: number; offset: number; bytes: number }
  | { kind: "write"; buffer: GPUBuffer; bufferId: number; offset: number; bytes: number };

/** Commands taken out of a {@linkcode Gpu} by {@linkcode Gpu.detachRecorded}, not yet submitted. */
export interface DetachedCommands {
  readonly buffers: readonly GPUCommandBuffer[];
  readonly dispatches: number;
}

/** Throws unless `writes` supplies exactly the host writes `graph` captured. */
function checkUploadCount(graph: CapturedGraph, writes: readonly ArrayBufferView[]): void {
  if (writes.length !== graph.writes) {
    throw new KernelError(
      `Cannot replay a captured step with ${writes.length} uploads: it recorded ${graph.writes}`,
    );
  }
}

/** A captured command stream: replayed without running the code that recorded it. */
export interface CapturedGraph {
  commands: CapturedCommand[];
  /** Number of `write` commands: the data arrays a replay must provide, in order. */
  writes: number;
  /** A string that identifies the stream (kernels, bind groups, sizes) for comparing two captures. */
  signature: string;
}

/**
 * Orion's handle on one GPU device.
 *
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * const gpu = await Gpu.create();
 * const buf = gpu.pool.acquire(16);
 * gpu.write(buf, new Float32Array([1, 2, 3, 4]));
 * const back = new Float32Array(await gpu.readback(buf, 0, 16));
 * console.log(back); // Float32Array [1, 2, 3, 4]
 * gpu.destroy();
 * ```
 */
export class Gpu {
  readonly device: GPUDevice;
  readonly features: GpuFeatures;
  readonly description: AdapterDescription;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  /** Counters: submits, dispatches recorded, and dispatches in the last submit. */
  readonly counters = {
    submits: 0,
    dispatches: 0,
    dispatchesLastSubmit: 0,
    bindGroupsCreated: 0,
    /** CPU milliseconds of the last replay's host uploads (`queue.writeBuffer` of the batch). */
    uploadMsLastReplay: 0,
    /** Bytes the last replay uploaded. */
    uploadBytesLastReplay: 0,
    /** Read-backs taken right after their `mapAsync` call returned ({@linkcode Gpu.earlyMaps}). */
    earlyMaps: 0,
    /** Read-backs that waited for their `mapAsync` promise. */
    awaitedMaps: 0,
    /** CPU milliseconds spent inside `queue.submit` calls, summed (wgpu's validation and tracking). */
    queueSubmitMs: 0,
  };
  /**
   * Read-backs are taken as soon as Deno's `mapAsync` call returns instead of ~10 ms later when its promise
   * resolves (see `early_map.ts`). Set by {@linkcode Gpu.create} from a probe of the runtime; false when the
   * probe fails or `ORION_EARLY_MAPS=0`.
   */
  earlyMaps = false;

  #encoder: GPUCommandEncoder | null = null;
  /** Command buffers finished by {@linkcode Gpu.seal}, sent first by the next submit. */
  #sealed: GPUCommandBuffer[] = [];
  /** Dispatches in {@linkcode Gpu.seal}ed command buffers since the last submit. */
  #dispatchesSealed = 0;
  #pass: GPUComputePassEncoder | null = null;
  #passFamily: string | undefined;
  #dispatchesThisSubmit = 0;
  readonly #uniforms = new Map<string, GpuBuffer>();
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  #readbacks: PendingReadback[] = [];
  #spreading: SpreadCopy[] = [];
  /** Held read-backs ({@linkcode MappedReadbackOptions.hold}) submitted but not mapped yet. */
  #held: PendingReadback[] = [];
  /** Spread read-backs submitted but not mapped yet (they wait for the next sync point). */
  #unmapped: { readback: PendingReadback; since: number }[] = [];
  #unmappedTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #stagingFree = new Map<number, GPUBuffer[]>();
  /** Staging buffers that completed a `READ` map (only those may be read early, see `early_map.ts`). */
  readonly #readMapped = new WeakSet<GPUBuffer>();
  readonly #errors: Error[] = [];
  #lastKernel = "(none)";
  #capture: CapturedCommand[] | null = null;
  readonly #bindGroupIds = new WeakMap<GPUBindGroup, number>();
  #nextBindGroupId = 1;
  #destroyed = false;
  /** Submit every dispatch on its own inside an error scope, so errors name their exact kernel. */
  readonly #debug: boolean;
  /** A small buffer for bindings a kernel declares but a particular entry point does not use. */
  readonly scratch: GpuBuffer;
  /**
   * The per-step uniform block `{ step: u32, seed: u32, rank: u32, stream_salt: u32 }` read by kernels
   * that draw random numbers. Written once per step by {@linkcode Gpu.setStepState}, so kernels and bind
   * groups stay identical from step to step.
   */
  readonly stepState: GpuBuffer;

  // Timestamp queries (per kernel family, pass granularity).
  #timing = false;
  #timingByKernel = false;
  #querySet: GPUQuerySet | null = null;
  #queryResolve: GPUBuffer | null = null;
  #queryCount = 0;
  #queryFamilies: string[] = [];
  #timings: FamilyTimings = { ns: {}, submits: 0 };
  #timingReads: Promise<void>[] = [];

  private constructor(device: GPUDevice, features: GpuFeatures, description: AdapterDescription) {
    this.device = device;
    this.features = features;
    this.description = description;
    this.pool = new BufferPool(device);
    this.pipelines = new PipelineCache(device, (e) => this.#errors.push(e));
    this.scratch = this.pool.acquire(256, "orion.scratch");
    this.pool.hasUnsubmittedWork = () => this.#encoder !== null || this.#sealed.length > 0;
    this.stepState = this.pool.adopt(
      device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: "orion.step_state",
      }),
    );
    let debug = false;
    try {
      debug = Deno.env.get("ORION_GPU_DEBUG") === "1";
    } catch { /* no env permission: not in debug mode */ }
    this.#debug = debug;
    device.addEventListener("uncapturederror", (event) => {
      const message = (event as GPUUncapturedErrorEvent).error?.message ?? String(event);
      this.#errors.push(
        new KernelError(
          `GPU error in a submit whose last kernel was "${this.#lastKernel}" (set ORION_GPU_DEBUG=1 to ` +
            `name the exact kernel): ${message}`,
        ),
      );
    });
  }

  /**
   * Acquires a device (see {@linkcode acquireDevice}) and wraps it. `earlyMaps: false` keeps every read-back
   * waiting for its `mapAsync` promise (as does `ORION_EARLY_MAPS=0`); otherwise the runtime is probed.
   */
  static async create(options: AcquireOptions & { earlyMaps?: boolean } = {}): Promise<Gpu> {
    const { device, features, description } = await acquireDevice(options);
    const gpu = new Gpu(device, features, description);
    if ((options.earlyMaps ?? true) && !earlyMapsDisabledByEnv()) {
      gpu.earlyMaps = await probeEarlyMaps(device);
    }
    return gpu;
  }

  /** Throws the first GPU error seen since the last check (compilation or validation), naming the kernel. */
  checkErrors(): void {
    if (this.#errors.length) {
      const [first, ...rest] = this.#errors.splice(0);
      if (rest.length) first.message += ` (and ${rest.length} more GPU errors)`;
      throw first;
    }
  }

  /** A uniform buffer holding `bytes`, shared by every dispatch with the same parameter bytes. */
  uniform(bytes: Uint8Array): GpuBuffer {
    let key = "";
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    for (let i = 0; i < words.length; i++) key += words[i].toString(36) + ",";
    let buf = this.#uniforms.get(key);
    if (!buf) {
      const buffer = this.device.createBuffer({
        size: Math.max(16, bytes.byteLength),
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        mappedAtCreation: true,
        label: "orion.uniform",
      });
      new Uint8Array(buffer.getMappedRange()).set(bytes);
      buffer.unmap();
      buf = this.pool.adopt(buffer);
      this.#uniforms.set(key, buf);
    }
    return buf;
  }

  /**
   * Sets the values of {@linkcode Gpu.stepState} for the commands recorded until the next submit. Call it
   * once per step before recording (a queue write lands before the next submit's commands).
   */
  setStepState(state: { step: number; seed: number; rank: number; salt?: number }): void {
    this.device.queue.writeBuffer(
      this.stepState.buffer,
      0,
      new Uint32Array([state.step >>> 0, state.seed >>> 0, state.rank >>> 0, (state.salt ?? 0) >>> 0]),
    );
  }

  /** Writes host data into a buffer (queue-ordered before the next submit). */
  write(target: BufferBinding, data: ArrayBufferView, byteOffset = 0): void {
    const { buffer, offset } = asRange(target);
    this.device.queue.writeBuffer(buffer.buffer, offset + byteOffset, data as ArrayBufferView<ArrayBuffer>);
    this.#capture?.push({
      kind: "write",
      buffer: buffer.buffer,
      bufferId: buffer.id,
      offset: offset + byteOffset,
      bytes: data.byteLength,
    });
  }

  /**
   * Writes host data so that it lands AFTER every command recorded so far: submits pending commands first
   * when there are any. (A plain {@linkcode Gpu.write} is a queue operation and lands before the commands
   * of the encoder still being recorded — right for uploads into fresh buffers, wrong for restoring state
   * that recorded commands also touch, e.g. after a constructor recorded a clear of the same buffer.)
   */
  writeAfterPending(target: BufferBinding, data: ArrayBufferView, byteOffset = 0): void {
    if (this.#encoder || this.#sealed.length) this.submit();
    this.write(target, data, byteOffset);
  }

  /**
   * Turns GPU timing on or off (needs `timestamp-query`; a no-op without it): per kernel family, or with
   * `"kernel"` per `family:kernel name@workgroup grid` (every change starts a timed pass: slower, for
   * profiles).
   */
  setTiming(on: boolean | "kernel"): void {
    if (on && !this.features.timestampQuery) return;
    this.#endPass();
    this.#timing = on !== false;
    this.#timingByKernel = on === "kernel";
    if (on && !this.#querySet) {
      this.#querySet = this.device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
      this.#queryResolve = this.device.createBuffer({
        size: MAX_QUERIES * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
    }
  }

  /** Collected per-family timings (after the timed submits' read-backs finished), then resets them. */
  async takeTimings(): Promise<FamilyTimings> {
    await Promise.all(this.#timingReads.splice(0));
    const t = this.#timings;
    this.#timings = { ns: {}, submits: 0 };
    return t;
  }

  #encoderOrNew(): GPUCommandEncoder {
    this.#encoder ??= this.device.createCommandEncoder({ label: "orion.step" });
    return this.#encoder;
  }

  #passFor(family: string, kernelName?: string, grid?: string): GPUComputePassEncoder {
    if (this.#timingByKernel && kernelName !== undefined) family = `${family}:${kernelName}@${grid}`;
    if (this.#pass && (!this.#timing || this.#passFamily === family)) return this.#pass;
    this.#endPass();
    const encoder = this.#encoderOrNew();
    let timestampWrites: GPUComputePassTimestampWrites | undefined;
    if (this.#timing && this.#querySet && this.#queryCount + 2 <= MAX_QUERIES) {
      timestampWrites = {
        querySet: this.#querySet,
        beginningOfPassWriteIndex: this.#queryCount,
        endOfPassWriteIndex: this.#queryCount + 1,
      };
      this.#queryFamilies.push(family);
      this.#queryCount += 2;
    }
    this.#pass = encoder.beginComputePass({ label: family, timestampWrites });
    this.#passFamily = family;
    return this.#pass;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
      this.#passFamily = undefined;
    }
  }

  #bindGroup(kernel: CompiledKernel, resources: readonly (BufferBinding | null)[]): GPUBindGroup {
    let key = `${kernel.spec.bindings.map((b) => b ?? "-").join(",")}`;
    for (const r of resources) {
      if (r === null) {
        key += "|-";
        continue;
      }
      const { buffer, offset, size } = asRange(r);
      key += `|${buffer.id}:${offset}:${size}`;
    }
    let group = this.#bindGroups.get(key);
    if (!group) {
      if (this.#bindGroups.size > 200_000) this.#bindGroups.clear();
      const entries: GPUBindGroupEntry[] = [];
      resources.forEach((r, binding) => {
        if (r === null || kernel.spec.bindings[binding] === null) return;
        const { buffer, offset, size } = asRange(r);
        entries.push({ binding, resource: { buffer: buffer.buffer, offset, size } });
      });
      group = this.device.createBindGroup({ layout: kernel.layout, entries });
      this.#bindGroups.set(key, group);
      this.#bindGroupIds.set(group, this.#nextBindGroupId++);
      this.counters.bindGroupsCreated++;
    }
    return group;
  }

  /**
   * Records one dispatch into the current step's command encoder.
   *
   * @param spec the kernel
   * @param resources one binding per entry of `spec.bindings` (the uniform one included, e.g. from
   *   {@linkcode Gpu.uniform})
   * @param workgroups workgroup counts (x, y, z), each ≤ maxComputeWorkgroupsPerDimension
   */
  dispatch(
    spec: KernelSpec,
    resources: readonly (BufferBinding | null)[],
    workgroups: readonly number[],
  ): void {
    if (resources.length !== spec.bindings.length) {
      throw new KernelError(
        `Cannot dispatch kernel "${spec.name}" as it declares ${spec.bindings.length} bindings: ` +
          `current value is ${resources.length} resources`,
      );
    }
    const [x, y = 1, z = 1] = workgroups;
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim) {
      throw new KernelError(
        `Cannot dispatch kernel "${spec.name}" with workgroups [${x}, ${y}, ${z}] as a dimension exceeds ` +
          `maxComputeWorkgroupsPerDimension: current value is ${maxDim}`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    const kernel = this.pipelines.get(spec);
    if (this.#debug) {
      this.#dispatchChecked(kernel, resources, x, y, z);
      return;
    }
    const family = spec.family ?? "other";
    const pass = this.#passFor(family, spec.name, this.#timingByKernel ? `${x}x${y}x${z}` : undefined);
    const bindGroup = this.#bindGroup(kernel, resources);
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.#capture?.push({
      kind: "dispatch",
      kernel,
      bindGroup,
      bindGroupId: this.#bindGroupIds.get(bindGroup)!,
      x,
      y,
      z,
      family,
    });
    this.#lastKernel = spec.name;
    this.counters.dispatches++;
    this.#dispatchesThisSubmit++;
  }

  #dispatchChecked(
    kernel: CompiledKernel,
    resources: readonly (BufferBinding | null)[],
    x: number,
    y: number,
    z: number,
  ): void {
    this.submit();
    this.device.pushErrorScope("validation");
    const encoder = this.device.createCommandEncoder({ label: kernel.spec.name });
    const pass = encoder.beginComputePass({ label: kernel.spec.name });
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, this.#bindGroup(kernel, resources));
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    this.device.queue.submit([encoder.finish()]);
    this.counters.dispatches++;
    const name = kernel.spec.name;
    this.device.popErrorScope().then((error) => {
      if (error) this.#errors.push(new KernelError(`Cannot run kernel "${name}": ${error.message}`));
    });
  }

  /** Records a buffer-to-buffer copy (ends the current compute pass). */
  copy(src: BufferBinding, dst: BufferBinding, bytes: number, srcOffset = 0, dstOffset = 0): void {
    const s = asRange(src);
    const d = asRange(dst);
    this.#endPass();
    this.#encoderOrNew().copyBufferToBuffer(
      s.buffer.buffer,
      s.offset + srcOffset,
      d.buffer.buffer,
      d.offset + dstOffset,
      bytes,
    );
    this.#capture?.push({
      kind: "copy",
      src: s.buffer.buffer,
      srcId: s.buffer.id,
      srcOffset: s.offset + srcOffset,
      dst: d.buffer.buffer,
      dstId: d.buffer.id,
      dstOffset: d.offset + dstOffset,
      bytes,
    });
  }

  /**
   * Records the copies of staged writes into their targets (ends the current compute pass; never
   * captured). Throws unless `staged` holds its loaded data whole.
   */
  copyStaged(staged: StagedWrites): void {
    this.#endPass();
    staged.recordCopies(this.#encoderOrNew());
  }

  /** Records zero-filling a byte range (ends the current compute pass). */
  clear(target: BufferBinding, bytes?: number): void {
    const { buffer, offset, size } = asRange(target);
    this.#endPass();
    this.#encoderOrNew().clearBuffer(buffer.buffer, offset, bytes ?? size);
    this.#capture?.push({
      kind: "clear",
      buffer: buffer.buffer,
      bufferId: buffer.id,
      offset,
      bytes: bytes ?? size,
    });
  }

  /**
   * Starts capturing: every dispatch, copy, clear and host write recorded until {@linkcode Gpu.endCapture}
   * is still executed as usual and also remembered, so that later steps can {@linkcode Gpu.replay} the
   * same stream without running the code that built it (the op wrappers, autograd, the optimizer's
   * bookkeeping). Valid only while the same buffers keep the same roles, which Orion's deterministic buffer
   * pool guarantees for an identical step.
   */
  beginCapture(): void {
    if (this.#debug) return;
    this.#capture = [];
  }

  /** Ends a capture (null in GPU debug mode, where dispatches are submitted one by one). */
  endCapture(): CapturedGraph | null {
    const commands = this.#capture;
    this.#capture = null;
    if (!commands) return null;
    const signature = commands.map((c) => {
      switch (c.kind) {
        case "dispatch":
          return `d${c.kernel.id}:${c.bindGroupId}:${c.x},${c.y},${c.z}`;
        case "copy":
          return `c${c.srcId}@${c.srcOffset}>${c.dstId}@${c.dstOffset}:${c.bytes}`;
        case "clear":
          return `z${c.bufferId}@${c.offset}:${c.bytes}`;
        case "write":
          return `w${c.bufferId}@${c.offset}:${c.bytes}`;
      }
    }).join(";");
    return { commands, writes: commands.filter((c) => c.kind === "write").length, signature };
  }

  /**
   * Re-records a captured stream into the current command encoder; `writes[i]` supplies the data of the
   * i-th captured host write (same byte length). With `{ skipWrites: true }` only the commands are recorded
   * (pass no writes): issue the uploads later with {@linkcode Gpu.replayWrites}, before the submit.
   */
  replay(
    graph: CapturedGraph,
    writes: readonly ArrayBufferView[],
    options: { skipWrites?: boolean } = {},
  ): void {
    if (options.skipWrites) {
      if (writes.length !== 0) {
        throw new KernelError(`Cannot replay without uploads and pass ${writes.length} of them`);
      }
    } else checkUploadCount(graph, writes);
    let w = 0;
    let uploadMs = 0;
    let uploadBytes = 0;
    // A pass keeps its pipeline and bind group between dispatches: skip the calls that would not change
    // them (each is a JS → native call; a poyo_1_3m step replays 533 dispatches).
    let pass: GPUComputePassEncoder | null = null;
    let pipeline: GPUComputePipeline | null = null;
    let bindGroup: GPUBindGroup | null = null;
    for (const c of graph.commands) {
      switch (c.kind) {
        case "dispatch": {
          const current = this.#passFor(
            c.family,
            c.kernel.spec.name,
            this.#timingByKernel ? `${c.x}x${c.y}x${c.z}` : undefined,
          );
          if (current !== pass) {
            pass = current;
            pipeline = null;
            bindGroup = null;
          }
          if (c.kernel.pipeline !== pipeline) current.setPipeline(pipeline = c.kernel.pipeline);
          if (c.bindGroup !== bindGroup) current.setBindGroup(0, bindGroup = c.bindGroup);
          current.dispatchWorkgroups(c.x, c.y, c.z);
          this.counters.dispatches++;
          this.#dispatchesThisSubmit++;
          break;
        }
        case "copy":
          this.#endPass();
          this.#encoderOrNew().copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
          break;
        case "clear":
          this.#endPass();
          this.#encoderOrNew().clearBuffer(c.buffer, c.offset, c.bytes);
          break;
        case "write": {
          if (options.skipWrites) break;
          const t0 = performance.now();
          uploadBytes += this.#replayWrite(c, writes[w], w++);
          uploadMs += performance.now() - t0;
          break;
        }
      }
    }
    if (options.skipWrites) return;
    this.counters.uploadMsLastReplay = uploadMs;
    this.counters.uploadBytesLastReplay = uploadBytes;
  }

  /**
   * Issues only the host writes of a captured stream (`writes[i]` for its i-th write), as queue writes: they
   * land before the next submit, so before commands recorded earlier with `replay(…, { skipWrites: true })`.
   */
  replayWrites(graph: CapturedGraph, writes: readonly ArrayBufferView[]): void {
    checkUploadCount(graph, writes);
    let w = 0;
    let uploadBytes = 0;
    const t0 = performance.now();
    for (const c of graph.commands) {
      if (c.kind === "write") uploadBytes += this.#replayWrite(c, writes[w], w++);
    }
    this.counters.uploadMsLastReplay = performance.now() - t0;
    this.counters.uploadBytesLastReplay = uploadBytes;
  }

  /** Issues captured write `c` (the `index`-th) with `data`; returns its bytes. */
  #replayWrite(c: Extract<CapturedCommand, { kind: "write" }>, data: ArrayBufferView, index: number): number {
    if (data.byteLength !== c.bytes) {
      throw new KernelError(
        `Cannot replay upload ${index} of ${data.byteLength} bytes: the captured step uploaded ${c.bytes}`,
      );
    }
    this.device.queue.writeBuffer(c.buffer, c.offset, data as ArrayBufferView<ArrayBuffer>);
    return data.byteLength;
  }

  /**
   * Finishes the commands recorded so far into a command buffer that the next submit sends ahead of
   * anything recorded after. wgpu translates a command encoder's work into the driver's commands in
   * `finish()`, 4–6 µs per dispatch on the H200 host (1.2–2.7 ms for a `poyo_1_3m` backward segment):
   * sealing while the GPU is busy keeps that off a later submit that the GPU waits for. Not with GPU timing
   * on (its queries are resolved per submit).
   */
  seal(): void {
    if (this.#timing) return;
    this.#endPass();
    if (!this.#encoder) return;
    this.#sealed.push(this.#encoder.finish());
    this.#encoder = null;
    this.#dispatchesSealed = this.#dispatchesThisSubmit;
  }

  /**
   * Takes the commands recorded since the last seal or submit out of this Gpu, finished, to be submitted
   * later through {@linkcode Gpu.attachRecorded}; null when there are none (sealed ones stay for the next
   * submit). Other work may be recorded and submitted meanwhile: it runs first. Host writes issued
   * meanwhile also land before the detached commands, so they must not touch what those commands read
   * from earlier work. Not with GPU timing on.
   */
  detachRecorded(): DetachedCommands | null {
    if (this.#timing) {
      throw new KernelError("Cannot detach recorded commands with GPU timing on: turn timing off first");
    }
    this.#endPass();
    if (!this.#encoder) return null;
    const buffer = this.#encoder.finish();
    this.#encoder = null;
    const dispatches = this.#dispatchesThisSubmit - this.#dispatchesSealed;
    this.#dispatchesThisSubmit = this.#dispatchesSealed;
    return { buffers: [buffer], dispatches };
  }

  /**
   * Makes detached commands the start of the next submit. Commands recorded since the last submit are
   * submitted first (recorded before the attach, they run first either way).
   */
  attachRecorded(commands: DetachedCommands): void {
    if (this.#encoder || this.#sealed.length) this.submit();
    this.#sealed = [...commands.buffers];
    this.#dispatchesThisSubmit += commands.dispatches;
    this.#dispatchesSealed = this.#dispatchesThisSubmit; // attached buffers are finished, like sealed ones
  }

  /**
   * Drops every command recorded or sealed since the last submit, unsubmitted (a step that failed part-way
   * must not leave, say, its optimizer update for the next submit); read-backs they carried reject.
   */
  discardRecorded(): void {
    this.#endPass();
    this.#encoder = null;
    this.#sealed = [];
    this.#dispatchesThisSubmit = 0;
    this.#dispatchesSealed = 0;
    this.#queryCount = 0;
    this.#queryFamilies = [];
    for (const r of this.#readbacks.splice(0)) {
      this.#freeStaging(r); // never mapped
      r.reject(new Error("Cannot read back a buffer as the commands carrying its copy were discarded"));
    }
  }

  /** Whether GPU timing is on ({@linkcode Gpu.setTiming}). */
  get timing(): boolean {
    return this.#timing;
  }

  /**
   * Records a copy of `size` bytes into a mappable staging buffer; the promise resolves with the bytes
   * after the next {@linkcode Gpu.submit} and the map complete. Never awaited inside a step.
   */
  readback(
    src: BufferBinding,
    byteOffset: number,
    size: number,
    options: ReadbackOptions = {},
  ): Promise<ArrayBuffer> {
    const staging = this.#stagingFor(src, byteOffset, size);
    return new Promise<Uint8Array>((resolve, reject) =>
      this.#readbacks.push({ staging, size, into: null, resolve, reject, spread: options.spread ?? false })
    ).then((bytes) => bytes.buffer as ArrayBuffer);
  }

  /**
   * {@linkcode Gpu.readback} into caller-owned memory: the bytes land in `into` (≥ `size` bytes, e.g. a view
   * of a SharedArrayBuffer or a reused buffer) instead of a fresh ArrayBuffer. On Deno a fresh buffer's
   * first touch page-faults: copying 16 MiB into one took ~11 ms on the H200 host vs a fraction of that into
   * memory already written once, so steady read-backs (gradients, checkpoints) should reuse destinations.
   *
   * @example
   * ```ts ignore
   * const host = new Uint8Array(grads.size); // allocated once, reused every step
   * const done = gpu.readbackInto(grads, 0, grads.size, host);
   * gpu.submit();
   * await done;
   * ```
   */
  readbackInto(
    src: BufferBinding,
    byteOffset: number,
    size: number,
    into: Uint8Array,
    options: ReadbackOptions = {},
  ): Promise<void> {
    if (into.byteLength < size) {
      throw new RangeError(
        `Cannot read ${size} bytes back into a destination of ${into.byteLength} bytes: current value is ${into.byteLength}`,
      );
    }
    const staging = this.#stagingFor(src, byteOffset, size);
    return new Promise<Uint8Array>((resolve, reject) =>
      this.#readbacks.push({ staging, size, into, resolve, reject, spread: options.spread ?? false })
    ).then(() => {});
  }

  /**
   * Like {@linkcode Gpu.readbackInto}, but the promise resolves as soon as the staging buffer is mapped, with a
   * {@linkcode MappedReadback} to copy out when the caller is ready (the gradient exchange copies buckets in
   * index order into memory the ring reduces in place).
   *
   * With `{ hold: true }` the submit does not map it: {@linkcode Gpu.mapHeldReadbacks} does, at the sync
   * point the caller chooses (the gradient exchange maps a backward segment's buckets right after that
   * segment's submit, before the next segment is submitted).
   *
   * @example
   * ```ts ignore
   * const mapped = gpu.readbackMapped(grads, 0, grads.size);
   * gpu.submit();
   * (await mapped).copyTo(host);
   * ```
   */
  readbackMapped(
    src: BufferBinding,
    byteOffset: number,
    size: number,
    options: MappedReadbackOptions = {},
  ): Promise<MappedReadback> {
    const staging = this.#stagingFor(src, byteOffset, size);
    return new Promise<MappedReadback>((deferred, reject) =>
      this.#readbacks.push({
        staging,
        size,
        into: null,
        resolve: () => {},
        reject,
        spread: false,
        deferred,
        hold: options.hold ?? false,
      })
    );
  }

  /**
   * Maps every held read-back ({@linkcode MappedReadbackOptions.hold}) already submitted. Mapping in Deno
   * 2.9.6 blocks this thread until the GPU has run everything submitted so far (with early maps the
   * read-backs are handed over then; otherwise ~10 ms later, a timer during which the thread is free): call it
   * right after the submit whose results are wanted and before submitting more work that the map should not
   * wait for. Returns how many were mapped.
   */
  mapHeldReadbacks(): number {
    const held = this.#held.splice(0);
    for (const r of held) this.#map(r);
    return held.length;
  }

  /** A free staging buffer holding a recorded copy of `size` bytes of `src` from `byteOffset`. */
  #stagingFor(src: BufferBinding, byteOffset: number, size: number): GPUBuffer {
    const cls = sizeClass(size);
    const staging = this.#stagingFree.get(cls)?.pop() ??
      this.device.createBuffer({
        size: cls,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "orion.staging",
      });
    const s = asRange(src);
    this.#endPass();
    this.#encoderOrNew().copyBufferToBuffer(
      s.buffer.buffer,
      s.offset + byteOffset,
      staging,
      0,
      Math.ceil(size / 4) * 4,
    );
    return staging;
  }

  /** Maps the spread read-backs whose copies were submitted but not yet mapped. */
  #mapUnmapped(): void {
    if (this.#unmappedTimer !== undefined) clearTimeout(this.#unmappedTimer);
    this.#unmappedTimer = undefined;
    for (const { readback } of this.#unmapped.splice(0)) this.#map(readback);
  }

  /**
   * Maps a submitted read-back; then copies it out at once, or slice by slice when spread. With
   * {@linkcode Gpu.earlyMaps} the bytes are taken when the `mapAsync` call returns (it has waited for the GPU
   * by then) rather than when its promise resolves ~10 ms later.
   */
  #map(r: PendingReadback): void {
    const mapping = r.staging.mapAsync(GPUMapMode.READ, 0, sizeClass(r.size));
    if (this.earlyMaps && this.#readMapped.has(r.staging) && mappedNow(r.staging)) {
      mapping.catch(() => {}); // resolves after its timer; the bytes are taken already
      this.counters.earlyMaps++;
      this.#mapped(r);
      return;
    }
    mapping.then(() => {
      this.#readMapped.add(r.staging);
      this.counters.awaitedMaps++;
      this.#mapped(r);
    }, (e) => r.reject(e instanceof Error ? e : new Error(String(e))));
  }

  /** A read-back's staging buffer is mapped: hand it over, copy it out, or start its spread copy. */
  #mapped(r: PendingReadback): void {
    if (r.deferred) {
      let settled = false;
      const settle = () => {
        if (settled) {
          throw new Error("Cannot use a mapped read-back twice: it was already copied or released");
        }
        settled = true;
      };
      r.deferred({
        size: r.size,
        copyTo: (into) => {
          if (into.byteLength < r.size) {
            throw new RangeError(
              `Cannot copy ${r.size} bytes into a destination of ${into.byteLength} bytes: current value is ${into.byteLength}`,
            );
          }
          settle();
          copyMapped(r.staging, into, 0, r.size);
          this.#releaseStaging(r);
          this.checkErrors();
        },
        copyRange: (into, start, end) => {
          if (settled) {
            throw new Error("Cannot copy part of a mapped read-back as it was already copied or released");
          }
          if (!(0 <= start && start <= end && end <= r.size && end <= into.byteLength)) {
            throw new RangeError(
              `Cannot copy bytes [${start}, ${end}) of a ${r.size}-byte read-back into ${into.byteLength} bytes: ` +
                `current value is [${start}, ${end})`,
            );
          }
          copyMapped(r.staging, into, start, end);
        },
        release: () => {
          if (settled) return;
          settle();
          this.#releaseStaging(r);
        },
      });
      return;
    }
    if (!r.spread) {
      const data = r.into ?? new Uint8Array(r.size);
      copyMapped(r.staging, data, 0, r.size);
      this.#finishReadback(r, data);
      return;
    }
    const copy: SpreadCopy = { readback: r, data: r.into ?? new Uint8Array(r.size), copied: 0 };
    this.#spreading.push(copy);
    setTimeout(() => {
      // Deadline: finish this one (and any older ones) at once.
      while (this.#spreading.includes(copy)) this.#copySpread(Number.MAX_SAFE_INTEGER);
    }, SPREAD_DEADLINE_MS);
  }

  /** Copies up to `budget` bytes of the oldest spread read-backs; resolves those that complete. */
  #copySpread(budget: number): void {
    while (this.#spreading.length && budget > 0) {
      const c = this.#spreading[0];
      const n = Math.min(budget, c.readback.size - c.copied);
      if (n > 0) {
        copyMapped(c.readback.staging, c.data, c.copied, c.copied + n);
        c.copied += n;
        budget -= n;
      }
      if (c.copied >= c.readback.size) {
        this.#spreading.shift();
        this.#finishReadback(c.readback, c.data);
      }
    }
  }

  /** Unmaps a read-back's staging buffer, returns it to the free list and settles its promise. */
  #finishReadback(r: PendingReadback, data: Uint8Array): void {
    this.#releaseStaging(r);
    if (this.#errors.length) {
      try {
        this.checkErrors();
      } catch (e) {
        r.reject(e as Error);
        return;
      }
    }
    r.resolve(data);
  }

  /** Unmaps a read-back's staging buffer and returns it to the free list. */
  #releaseStaging(r: PendingReadback): void {
    r.staging.unmap();
    this.#freeStaging(r);
  }

  /** Returns a read-back's (unmapped) staging buffer to the free list. */
  #freeStaging(r: PendingReadback): void {
    const cls = sizeClass(r.size);
    let list = this.#stagingFree.get(cls);
    if (!list) this.#stagingFree.set(cls, list = []);
    list.push(r.staging);
  }

  /** Ends the step: finishes the command encoder and submits it (one `queue.submit`). */
  submit(): void {
    this.checkErrors();
    this.#endPass();
    const encoder = this.#encoder;
    this.#encoder = null;
    let timed: { families: string[]; read: GPUBuffer } | undefined;
    if (encoder && this.#timing && this.#queryCount > 0 && this.#querySet && this.#queryResolve) {
      encoder.resolveQuerySet(this.#querySet, 0, this.#queryCount, this.#queryResolve, 0);
      const read = this.device.createBuffer({
        size: this.#queryCount * 8,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      encoder.copyBufferToBuffer(this.#queryResolve, 0, read, 0, this.#queryCount * 8);
      timed = { families: this.#queryFamilies, read };
    }
    this.#queryCount = 0;
    this.#queryFamilies = [];
    const buffers = this.#sealed;
    this.#sealed = [];
    if (encoder) buffers.push(encoder.finish());
    if (buffers.length) {
      const q0 = performance.now();
      this.device.queue.submit(buffers);
      this.counters.queueSubmitMs += performance.now() - q0;
      this.counters.submits++;
    }
    this.pool.recycle();
    this.counters.dispatchesLastSubmit = this.#dispatchesThisSubmit;
    this.#dispatchesThisSubmit = 0;
    this.#dispatchesSealed = 0;
    const readbacks = this.#readbacks;
    this.#readbacks = [];
    // The GPU was just handed this submit's work: copy a slice of spread read-backs now.
    this.#copySpread(SPREAD_SLICE_BYTES);
    // Mapping makes this thread wait for the GPU to finish the work queued so far (a sync point), so spread
    // read-backs are mapped together with the next ordinary read-back (metrics), which waits anyway — or
    // after SPREAD_MAP_DEADLINE_MS.
    const immediate = readbacks.filter((r) => !r.spread && !r.hold);
    for (const r of readbacks) {
      if (r.spread) this.#unmapped.push({ readback: r, since: performance.now() });
      else if (r.hold) this.#held.push(r);
    }
    const overdue = this.#unmapped.length > 0 &&
      performance.now() - this.#unmapped[0].since >= SPREAD_MAP_DEADLINE_MS;
    for (const r of immediate) this.#map(r);
    if (immediate.length > 0 || overdue) this.#mapUnmapped();
    else if (this.#unmapped.length && this.#unmappedTimer === undefined) {
      this.#unmappedTimer = setTimeout(() => this.#mapUnmapped(), SPREAD_MAP_DEADLINE_MS);
    }
    if (timed) {
      const { families, read } = timed;
      this.#timingReads.push(
        read.mapAsync(GPUMapMode.READ).then(() => {
          const stamps = new BigUint64Array(read.getMappedRange().slice(0));
          read.unmap();
          read.destroy();
          families.forEach((family, i) => {
            const ns = Number(stamps[2 * i + 1] - stamps[2 * i]);
            this.#timings.ns[family] = (this.#timings.ns[family] ?? 0) + ns;
          });
          this.#timings.submits++;
        }),
      );
    }
  }

  /** Submits pending work and waits until the GPU finished it; throws GPU errors naming the kernel. */
  async sync(): Promise<void> {
    if (this.earlyMaps) {
      // A 4-byte read-back returns as soon as the GPU is done; `onSubmittedWorkDone` adds Deno's 10 ms timer.
      const done = this.readback(this.scratch, 0, 4);
      this.submit();
      await done;
    } else {
      if (this.#encoder || this.#sealed.length || this.#readbacks.length) this.submit();
      await this.device.queue.onSubmittedWorkDone();
    }
    this.checkErrors();
  }

  /** Convenience for tests and tooling: submit and read a range back (waits on the GPU). */
  async read(src: BufferBinding, byteOffset: number, size: number): Promise<ArrayBuffer> {
    const p = this.readback(src, byteOffset, size);
    this.submit();
    return await p;
  }

  /** Releases the device. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    // Spread read-backs still copying are mapped: finish them before the device goes.
    this.#copySpread(Number.MAX_SAFE_INTEGER);
    if (this.#unmappedTimer !== undefined) clearTimeout(this.#unmappedTimer);
    for (const readback of [...this.#unmapped.splice(0).map((u) => u.readback), ...this.#held.splice(0)]) {
      readback.reject(new Error("Cannot read back a buffer as its device was destroyed before the map"));
    }
    this.device.destroy();
  }
}

/**
 * Bytes copied per `getMappedRange` call when a mapped read-back is copied out. Deno's `getMappedRange` hands
 * out a new ArrayBuffer per call; one over a whole large range costs its page faults every time (16 MiB:
 * 10.5 ms at once vs 2.8 ms in 1 MiB slices on the development VM, `scripts/bench_readback.ts`). Small slices
 * stay below the allocator's mmap threshold, so their memory is reused instead of faulted in again: inside a
 * training process on the H200 host, copying the seed size's 129.5 MB of gradients per step took 127 ms in
 * 1 MiB slices, 61 ms in 256 KiB and 56 ms in 64 KiB (`bench_train --sync-loopback`, 2026-11-29).
 */
export const MAPPED_COPY_SLICE_BYTES = 64 << 10;

/**
 * Copies bytes [start, end) of a mapped buffer into `into` at the same offsets, in slices of
 * {@linkcode MAPPED_COPY_SLICE_BYTES} (ranges are 8-byte aligned as `getMappedRange` requires; the buffer's
 * size class covers the rounding).
 */
function copyMapped(buffer: GPUBuffer, into: Uint8Array, start: number, end: number): void {
  for (let at = start; at < end;) {
    const stop = Math.min(end, at + MAPPED_COPY_SLICE_BYTES);
    const alignedStart = at - (at % 8);
    const alignedEnd = Math.min(buffer.size, Math.ceil(stop / 8) * 8);
    const range = new Uint8Array(buffer.getMappedRange(alignedStart, alignedEnd - alignedStart));
    into.set(range.subarray(at - alignedStart, stop - alignedStart), at);
    at = stop;
  }
}

/** Normalizes a binding to (buffer, offset, size). */
export function asRange(b: BufferBinding): { buffer: GpuBuffer; offset: number; size: number } {
  return "offset" in b ? b : { buffer: b, offset: 0, size: b.size };
}
