import MLRACore

/// The world split into N/t tensor-parallel groups of t consecutive ranks
/// (MPI_Comm_split, color = rank / t). Group g is data-parallel replica g.
public struct TPGroups {
    public let world: Communicator
    public let tp: Int
    /// This rank's TP group communicator (size t).
    public let group: Communicator
    /// Which replica this rank's group is (0 ..< N/t).
    public let replica: Int
    public var replicas: Int { world.size / tp }
    public var tpRank: Int { group.rank }

    /// Checks t against the world before any allocation; every rank computes the
    /// same verdict, so every rank stops together with the same one-line error.
    public static func check(tp: Int, worldSize: Int) throws {
        guard tp >= 1 else { throw HarnessError("TP degree must be at least 1, got \(tp)") }
        guard worldSize % tp == 0 else {
            throw HarnessError("TP degree \(tp) does not divide the world size \(worldSize) (mpirun -n \(worldSize))")
        }
    }

    public init(world: Communicator, tp: Int) throws {
        try Self.check(tp: tp, worldSize: world.size)
        self.world = world
        self.tp = tp
        replica = world.rank / tp
        group = world.split(color: replica, key: world.rank % tp)
    }
}

/// An error every rank of a communicator has agreed on (see `collectively`):
/// safe to handle by printing once and exiting normally on every rank.
public struct AgreedError: Error, CustomStringConvertible {
    public let message: String
    /// An error every rank reached the same way (a decision made on agreed data).
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension Communicator {
    /// Runs `body` on every rank, then agrees on the outcome: if any rank threw,
    /// every rank throws the lowest failing rank's error as an `AgreedError`
    /// (printed once, on rank 0), so no rank is left waiting in a later collective.
    public func collectively<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var message = ""
        do { result = try body() } catch let e as HarnessError { message = e.message } catch { message = "\(error)" }
        let failing = allGatherDoubles([message.isEmpty ? 0 : 1])
        guard let first = failing.firstIndex(of: 1) else { return result! }
        let text = broadcast(message, root: first)
        throw AgreedError(message: failing.allSatisfy({ $0 == 1 }) ? text : "rank \(first): \(text)")
    }
}
