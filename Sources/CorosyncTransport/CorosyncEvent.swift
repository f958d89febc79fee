/// What a `CorosyncGroup` reports, in the order Corosync reports it. Deliveries and CPG
/// membership changes share one totally ordered stream (virtual synchrony: every member sees
/// the same messages between the same membership changes); quorum notifications come from
/// votequorum on a separate channel and are not ordered relative to them.
public enum CorosyncEvent: Sendable, Equatable {
    /// A message multicast to the group (including our own), in agreed order.
    case delivered(from: UInt32, payload: [UInt8])
    /// A CPG configuration change: node ids of the group's member processes, each list sorted.
    /// `agentOnly`: the subset of `left` whose node is still in Corosync's membership — only the
    /// group member process went away (CPG reason LEAVE or PROCDOWN, not NODEDOWN).
    case membership(members: [UInt32], joined: [UInt32], left: [UInt32], agentOnly: [UInt32])
    /// A votequorum notification: whether this node's partition is quorate, and its member
    /// node ids, sorted.
    case quorum(quorate: Bool, members: [UInt32])
    /// The connection to corosync is lost (corosync died or the IPC broke); the stream finishes.
    case disconnected(CorosyncError)
}
