import MLRACore

/// The world split into N/t tensor-parallel groups of t ranks (MPI_Comm_split). The
/// ranks are taken node by node (`NodeTopology.nodeMajorOrder`), t at a time, so a
/// group lies inside one node whenever t divides every node's rank count, whether the
/// launcher placed ranks by slot or by node; one node alone gives groups of t
/// consecutive ranks. A group that would span nodes is refused unless
/// `allowCrossNode`. Group g is data-parallel replica g; replicas span nodes freely.
public struct TPGroups {
    public let world: Communicator
    public let tp: Int
    /// This rank's TP group communicator (size t).
    public let group: Communicator
    /// Which replica this rank's group is (0 ..< N/t).
    public let replica: Int
    public let topology: NodeTopology
    /// World ranks in group order: replica g is members[g·t ..< (g+1)·t], its rank 0 first.
    public let members: [Int]
    public var replicas: Int { world.size / tp }
    public var tpRank: Int { group.rank }

    /// Checks t against the world and its nodes before any allocation; every rank
    /// computes the same verdict (the topology is the same everywhere), so every rank
    /// stops together with the same one-line error.
    public static func check(tp: Int, worldSize: Int) throws {
        guard tp >= 1 else { throw HarnessError("TP degree must be at least 1, got \(tp)") }
        guard worldSize % tp == 0 else {
            throw HarnessError("TP degree \(tp) does not divide the world size \(worldSize) (mpirun -n \(worldSize))")
        }
    }

    public static func check(tp: Int, topology: NodeTopology, allowCrossNode: Bool) throws {
        try check(tp: tp, worldSize: topology.nodeOf.count)
        if !allowCrossNode, let reason = topology.crossNodeReason(tp: tp) { throw HarnessError(reason) }
    }

    public init(world: Communicator, tp: Int, topology: NodeTopology, allowCrossNode: Bool) throws {
        try Self.check(tp: tp, topology: topology, allowCrossNode: allowCrossNode)
        self.world = world
        self.tp = tp
        self.topology = topology
        members = topology.nodeMajorOrder
        let position = members.firstIndex(of: world.rank)!
        replica = position / tp
        group = world.split(color: replica, key: position % tp)
    }

    /// The world ranks of replica g, its TP rank 0 first.
    public func ranks(ofReplica g: Int) -> ArraySlice<Int> { members[(g * tp)..<((g + 1) * tp)] }
    /// Replica g's number of nodes and their host names (columns group_nodes, group_hosts).
    public func hosts(ofReplica g: Int) -> [String] { topology.nodes(of: ranks(ofReplica: g)).map { topology.hostOf[$0] } }
}

/// An error every rank of a communicator has agreed on (see `collectively`):
/// safe to handle by printing once and exiting normally on every rank.
public struct AgreedError: Error, CustomStringConvertible {
    public let message: String
    /// Whether the command line was wrong (usage) or the run failed.
    public let kind: HarnessError.Kind
    /// An error every rank reached the same way (a decision made on agreed data).
    public init(message: String, kind: HarnessError.Kind = .failure) { self.message = message; self.kind = kind }
    public var description: String { message }
}

extension Communicator {
    /// Runs `body` on every rank, then agrees on the outcome: if any rank threw,
    /// every rank throws the lowest failing rank's error as an `AgreedError`
    /// (printed once, on rank 0), so no rank is left waiting in a later collective.
    public func collectively<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var message = "", kind = HarnessError.Kind.failure
        do { result = try body() } catch let e as HarnessError { (message, kind) = (e.message, e.kind) }
        catch let e as AgreedError { (message, kind) = (e.message, e.kind) } catch { message = "\(error)" }
        // Per rank: 0 passed, 1 failed, 2 failed with a usage error.
        let outcome = allGatherDoubles([message.isEmpty ? 0 : kind == .usage ? 2 : 1])
        guard let first = outcome.firstIndex(where: { $0 != 0 }) else { return result! }
        let text = broadcast(message, root: first)
        throw AgreedError(message: outcome.allSatisfy({ $0 != 0 }) ? text : "rank \(first): \(text)",
                          kind: outcome[first] == 2 ? .usage : .failure)
    }
}
