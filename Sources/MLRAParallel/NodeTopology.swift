import MLRACore

/// Which node every rank of a communicator runs on, from the node-local
/// communicators (MPI_Comm_split_type, MPI_COMM_TYPE_SHARED), not from host
/// names or the launcher's environment: it holds for mpirun and srun, for
/// `--map-by node` and by slot, for Open MPI and MPICH alike. Every rank holds
/// the same copy (one all-gather), so decisions taken from it agree everywhere.
public struct NodeTopology: Sendable {
    /// Per rank of the communicator: its node (0 ..< nodeCount, nodes numbered by their lowest rank).
    public let nodeOf: [Int]
    /// Per rank: its rank among the ranks of its node.
    public let localRankOf: [Int]
    /// Per node: the processor name (MPI_Get_processor_name) of its lowest rank.
    public let hostOf: [String]
    /// The caller's rank and its node-local rank and node size (GPU binding, memory budget).
    public let rank: Int
    public var localRank: Int { localRankOf[rank] }
    public var localSize: Int { ranksPerNode[nodeOf[rank]] }

    public var nodeCount: Int { hostOf.count }
    public var ranksPerNode: [Int] { (0..<nodeCount).map { n in nodeOf.filter { $0 == n }.count } }
    /// The ranks ordered node by node (then by node-local rank): consecutive runs of t of
    /// this order are the TP groups, so a group stays on one node whenever t divides
    /// every node's rank count, whatever order the launcher placed the ranks in.
    public var nodeMajorOrder: [Int] { nodeOf.indices.sorted { (nodeOf[$0], localRankOf[$0]) < (nodeOf[$1], localRankOf[$1]) } }

    public init(nodeOf: [Int], localRankOf: [Int], hostOf: [String], rank: Int) {
        self.nodeOf = nodeOf; self.localRankOf = localRankOf; self.hostOf = hostOf; self.rank = rank
    }

    /// A collective over `comm`: call it on every rank.
    public init(_ comm: Communicator) {
        let (leader, local) = comm.nodeLeader()
        let pairs = comm.allGatherDoubles([Double(leader), Double(local)])
        let leaders = stride(from: 0, to: pairs.count, by: 2).map { Int(pairs[$0]) }
        let nodeLeaders = Array(Set(leaders)).sorted()
        let index = Dictionary(uniqueKeysWithValues: nodeLeaders.enumerated().map { ($1, $0) })
        // One broadcast per node: its lowest rank's name names the node.
        let name = MPI.processorName
        self.init(nodeOf: leaders.map { index[$0]! },
                  localRankOf: stride(from: 1, to: pairs.count, by: 2).map { Int(pairs[$0]) },
                  hostOf: nodeLeaders.map { comm.broadcast(comm.rank == $0 ? name : "", root: $0) },
                  rank: comm.rank)
    }

    /// The distinct nodes of a set of ranks, in node order.
    public func nodes(of ranks: some Sequence<Int>) -> [Int] { Array(Set(ranks.map { nodeOf[$0] })).sorted() }

    /// Why TP groups of `tp` consecutive ranks of `nodeMajorOrder` would span nodes, or nil
    /// when each lies inside one node (t divides every node's rank count).
    public func crossNodeReason(tp: Int) -> String? {
        let counts = ranksPerNode
        guard counts.contains(where: { $0 % tp != 0 }) else { return nil }
        let per = Set(counts).count == 1 ? "\(counts[0]) ranks per node" : "ranks per node \(counts.map(String.init).joined(separator: ","))"
        return "TP degree t = \(tp) cannot be formed inside one node with \(per) on \(nodeCount) node\(nodeCount == 1 ? "" : "s"): "
            + "a TP group stays inside one node, so t must divide the ranks per node (--ntasks-per-node); "
            + "pass --allow-cross-node-tp to let TP groups span nodes"
    }
}
