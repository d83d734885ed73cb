/**
 * Distributed training: coordinator, ranks, ring all-reduce over WebSockets, launch backends.
 *
 * @module
 */
export * from "./context.ts";
export * from "./frames.ts";
export * from "./control_messages.ts";
export * from "./join_token.ts";
export * from "./simd_add.ts";
export * from "./ring_all_reduce.ts";
export * from "./send_queue.ts";
export * from "./coordinator.ts";
export * from "./rank_client.ts";
export * from "./gpu_pinning.ts";
export * from "./node_agent.ts";
export * from "./cluster_plan.ts";
export * from "./launch_local.ts";
export * from "./launch_skypilot.ts";
export * from "./launch_slurm.ts";
export * from "./launch_pbs.ts";
export * from "./launch_cli.ts";
export * from "./raw_websocket.ts";
export * from "./peer_transport.ts";
export * from "./reduce_arena.ts";
export * from "./stripe_ring.ts";
export * from "./striped_all_reduce.ts";
export * from "./bucket_overlap.ts";
