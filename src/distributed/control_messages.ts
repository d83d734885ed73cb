/**
 * Control messages between the coordinator, rank processes and node agents: zod schemas, msgpack on the wire.
 *
 * Every control message is a msgpack map with a string tag `t`. {@link decodeControl} parses bytes into a
 * typed message or throws a {@link FrameError}, so handlers never see unchecked shapes.
 *
 * @module
 */
// The pure-JS entry point: the package root (node-index.js) reads an environment variable at import,
// which would make every `orion` command need --allow-env.
import { Packr } from "msgpackr/pack";
import { z } from "zod";
import { decodeFrame, encodeControlFrame, FrameError, FrameType } from "./frames.ts";

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

const count = z.number().int().min(0).max(0xffff_ffff);

/** Longest silence a rank may announce with a `busy` message: 15 minutes. */
export const MAX_BUSY_MS = 15 * 60_000;
const hostName = z.string().min(1).max(255);

/** Address of a rank's data-plane server. */
export const PeerAddressSchema = z.object({
  rank: count,
  host: hostName,
  port: z.number().int().min(1).max(65535),
  /** Ports of the rank's all-reduce stripe servers (stripe order); absent or empty = the rank's own-thread ring only. */
  stripePorts: z.array(z.number().int().min(1).max(65535)).max(64).optional(),
  /** Smallest bucket (bytes) the rank sends through its stripes; absent = the automatic size. */
  stripeMinBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /**
   * Most stripes the rank's host has cores for: its logical cores ÷ the job's ranks on that host (≥ 1), set
   * by the coordinator when the rank reported its cores (its stripe count was not set by hand).
   */
  stripeCap: z.number().int().min(1).max(64).optional(),
  /** Port of the rank's polled-ring server (`polled_ring.ts`); absent = the rank offers none. */
  polledPort: z.number().int().min(1).max(65535).optional(),
  /** Ports of the rank's stripes' polled-link servers (stripe order); absent or empty = none. */
  stripePolledPorts: z.array(z.number().int().min(1).max(65535)).max(64).optional(),
  /** Largest bucket (bytes) the rank sends through the polled mesh (`polled_mesh.ts`); absent = no mesh. */
  meshMaxBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
/** Address of a rank's data-plane server. */
export type PeerAddress = z.infer<typeof PeerAddressSchema>;

/** Messages a rank process or node agent sends to the coordinator. */
export const ToCoordinatorSchema = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("hello"),
    role: z.enum(["rank", "agent"]),
    /** Host name as the process sees it (rank ordering key). */
    host: hostName,
    /** Host peers should dial for this rank's data server; default: the address the coordinator saw. */
    advertiseHost: hostName.nullable(),
    nodeRank: count.nullable(),
    localRank: count.nullable(),
    /** Port of this rank's data server (ranks only). */
    dataPort: z.number().int().min(1).max(65535).nullable(),
    /** Ports of this rank's all-reduce stripe servers (ranks only; absent or empty = no stripes). */
    stripePorts: z.array(z.number().int().min(1).max(65535)).max(64).optional(),
    /** Smallest bucket (bytes) the rank sends through its stripes (ranks only; absent = the automatic size). */
    stripeMinBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /**
     * Logical cores of the rank's host (ranks only), sent when its stripe count is the default: the job
     * then shares the cores among the host's ranks ({@link PeerAddress} `stripeCap`).
     */
    cores: z.number().int().min(1).max(1 << 20).optional(),
    /** Port of this rank's polled-ring server (ranks only; absent = none). */
    polledPort: z.number().int().min(1).max(65535).optional(),
    /** Ports of this rank's stripes' polled-link servers (ranks only; absent or empty = none). */
    stripePolledPorts: z.array(z.number().int().min(1).max(65535)).max(64).optional(),
    /** Largest bucket (bytes) this rank sends through the polled mesh (ranks only; absent = no mesh). */
    meshMaxBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    pid: count,
  }).strict(),
  z.object({ t: z.literal("ready"), generation: count }).strict(),
  z.object({ t: z.literal("heartbeat") }).strict(),
  /**
   * The rank's thread may be silent for up to `ms` from now (a known long synchronous phase: compiling its
   * GPU pipelines); 0 ends the announcement. Capped by {@link MAX_BUSY_MS}.
   */
  z.object({ t: z.literal("busy"), ms: z.number().int().min(0).max(MAX_BUSY_MS), what: z.string().max(200) })
    .strict(),
  z.object({ t: z.literal("barrier"), seq: count, name: z.string().max(200) }).strict(),
  z.object({ t: z.literal("broadcast"), seq: count, root: count, value: z.unknown() }).strict(),
  z.object({ t: z.literal("ckpt_part"), step: count, rank: count }).strict(),
  z.object({ t: z.literal("peer_lost"), peerRank: count, reason: z.string().max(500) }).strict(),
  z.object({ t: z.literal("done") }).strict(),
]);
/** Messages a rank process or node agent sends to the coordinator. */
export type ToCoordinator = z.infer<typeof ToCoordinatorSchema>;

/** Messages the coordinator sends to rank processes and node agents. */
export const ToRankSchema = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("assign"),
    jobId: z.string(),
    generation: count,
    restartCount: count,
    rank: count,
    worldSize: z.number().int().min(1),
    localRank: count,
    localWorldSize: z.number().int().min(1),
    /** Last checkpoint step every rank reported written, or null to start fresh. */
    resumeStep: count.nullable(),
    config: z.unknown(),
    peers: z.array(PeerAddressSchema),
  }).strict(),
  z.object({ t: z.literal("start"), generation: count }).strict(),
  z.object({ t: z.literal("heartbeat") }).strict(),
  z.object({ t: z.literal("barrier_release"), seq: count, name: z.string() }).strict(),
  z.object({ t: z.literal("broadcast_value"), seq: count, root: count, value: z.unknown() }).strict(),
  z.object({ t: z.literal("ckpt_committed"), step: count }).strict(),
  z.object({
    t: z.literal("stop"),
    generation: count,
    reason: z.string(),
    /** True when the coordinator will re-rendezvous (the process should exit for a restart). */
    restartPlanned: z.boolean(),
  }).strict(),
  z.object({
    t: z.literal("generation_failed"),
    generation: count,
    reason: z.string(),
    restartPlanned: z.boolean(),
    /** Processes of the failed generation, so node agents can reap hung ones. */
    members: z.array(z.object({ rank: count, host: hostName, pid: count })),
  }).strict(),
  z.object({ t: z.literal("shutdown"), status: z.enum(["completed", "failed"]), reason: z.string() })
    .strict(),
]);
/** Messages the coordinator sends to rank processes and node agents. */
export type ToRank = z.infer<typeof ToRankSchema>;

/** Encodes a control message as a complete frame. */
export function encodeControl(message: ToCoordinator | ToRank): Uint8Array<ArrayBuffer> {
  return encodeControlFrame(packr.pack(message));
}

function unpackPayload(payload: Uint8Array): unknown {
  try {
    return packr.unpack(payload);
  } catch (error) {
    throw new FrameError(`control payload is not msgpack: ${(error as Error).message}`);
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FrameError(`bad control message at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  return parsed.data;
}

/** Parses a received message that must be a control frame for the coordinator. */
export function decodeToCoordinator(message: unknown): ToCoordinator {
  const frame = decodeFrame(message);
  if (frame.type !== FrameType.control) throw new FrameError("data frame sent to the coordinator");
  return parseWith(ToCoordinatorSchema, unpackPayload(frame.payload));
}

/** Parses a received message that must be a control frame for a rank or agent. */
export function decodeToRank(message: unknown): ToRank {
  const frame = decodeFrame(message);
  if (frame.type !== FrameType.control) throw new FrameError("data frame on the control connection");
  return parseWith(ToRankSchema, unpackPayload(frame.payload));
}
