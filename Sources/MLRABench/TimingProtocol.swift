import MLRACore
import MLRAParallel

/// The timing protocol (OSU/IMB style), written once:
/// barrier; `warmup` untimed steps; then `steps` timed steps, each bracketed by
/// MPI_Wtime with a barrier before it; every sample kept; per step the maximum
/// over the TP group's ranks (a TP step ends when its slowest rank ends).
/// Kernel and collective seconds inside each step are recorded alongside, and the
/// collectives' wait for the slowest rank (the imbalance) apart from the collectives.
public struct StepSamples {
    /// Seconds per timed step (max over the group's ranks).
    public var step: [Double]
    public var kernel: [Double]
    /// The collectives alone, after the barrier that waits for the group's last rank
    /// (concurrent mode: min over ranks, see `concurrent`).
    public var collective: [Double]
    /// The wait in that barrier: max over ranks, i.e. the fastest rank's wait for the
    /// slowest (0 where nothing is communicated).
    public var wait: [Double]

    public init(step: [Double], kernel: [Double], collective: [Double], wait: [Double]? = nil) {
        self.step = step; self.kernel = kernel; self.collective = collective
        self.wait = wait ?? [Double](repeating: 0, count: step.count)
    }
}

/// Where a step's kernel seconds are read from: the CPU kernel's wall time (`TimedKernel`)
/// or a GPU's CUDA events around its attention launches.
public protocol KernelClock: AnyObject {
    /// Seconds spent in the attention kernel so far.
    var seconds: Double { get }
}

extension TimedKernel: KernelClock {}

public enum TimingMode: String, Sendable {
    /// All ranks step together; what a dedicated node would see.
    case concurrent
    /// Ranks time their local work one after another (others sleep), and the
    /// step is modelled as max(local work over ranks) + the measured collectives.
    /// For oversubscribed nodes, where concurrent ranks would slow each other.
    case isolated
    /// Kernel scope at a TP degree above the job's size: world rank 0 times the
    /// busiest rank's share of the plan alone, as the paper times one device.
    case deviceShare = "device-share"
}

public enum TimingProtocol {
    /// Most warm-up or timed steps one configuration may ask for (a million; every
    /// sample is kept, and an unbounded count would loop for ever or exhaust memory).
    public static let maxSteps = 1 << 20

    /// Concurrent mode for the ranks of one TP group.
    public static func concurrent(_ work: StepWorkload, group: Communicator, kernel: KernelClock,
                                  warmup: Int, steps: Int) -> StepSamples {
        // Warm-up too: the barriers before the collectives are part of every step timed.
        group.waitApart = true
        defer { group.waitApart = false }
        group.barrier()
        for _ in 0..<warmup { work.step(collectives: group) }
        var s = StepSamples(step: [], kernel: [], collective: [], wait: [])
        for _ in 0..<steps {
            group.barrier()
            let (k0, c0, w0) = (kernel.seconds, group.collectiveSeconds, group.waitSeconds)
            let t0 = MPI.wtime()
            work.step(collectives: group)
            s.step.append(MPI.wtime() - t0)
            s.kernel.append(kernel.seconds - k0)
            s.collective.append(group.collectiveSeconds - c0)
            s.wait.append(group.waitSeconds - w0)
        }
        // The collective per step is the min over ranks, not the max: ranks leave the barrier
        // at slightly different times (on a loaded node one may not run for milliseconds),
        // and a rank that enters the collective first waits inside it for the others. The
        // rank that enters last waits for no one: its time is the communication, and every
        // rank of an all-reduce takes part in all of it, so no rank needs less.
        return StepSamples(step: group.allReduceMax(s.step), kernel: group.allReduceMax(s.kernel),
                           collective: group.allReduceMax(s.collective.map { -$0 }).map { -$0 },
                           wait: group.allReduceMax(s.wait))
    }

    /// Local work timed on this rank alone: every rank of `world` takes its turn
    /// while the others sleep in a quiet barrier. Non-participating ranks pass
    /// `work` = nil. Returns this rank's own samples (empty when not participating).
    public static func isolatedLocal(_ work: StepWorkload?, world: Communicator, tpSize: Int, tpRank: Int,
                                     kernel: KernelClock?, warmup: Int, steps: Int) -> (step: [Double], kernel: [Double]) {
        var step = [Double](), kern = [Double]()
        let local = LocalOnlyCollectives(tpSize: tpSize, tpRank: tpRank)
        inTurn(world: world) {
            guard let work, let kernel else { return }
            for _ in 0..<warmup { work.step(collectives: local) }
            for _ in 0..<steps {
                let k0 = kernel.seconds
                let t0 = MPI.wtime()
                work.step(collectives: local)
                step.append(MPI.wtime() - t0)
                kern.append(kernel.seconds - k0)
            }
        }
        return (step, kern)
    }

    /// Runs `body` on each rank of `world` in turn while the others sleep in a quiet
    /// barrier: the order of isolation mode (the CPU's local work above, a GPU's
    /// timing in SweepDriver+CUDA). `body` must not communicate.
    public static func inTurn(world: Communicator, _ body: () -> Void) {
        for turn in 0..<world.size {
            world.quietBarrier()
            if turn == world.rank { body() }
        }
        world.quietBarrier()
    }

    /// The collectives of one step, measured on their own (same payloads, same
    /// count), per step the max over the group's ranks: the collectives alone, each
    /// after a barrier as in concurrent mode (the wait there is only the barrier's own
    /// cost: the ranks arrive together).
    public static func collectivesOnly(_ pattern: (allReduceFloats: [Int], allGatherFloats: Int?), group: Communicator,
                                       warmup: Int, steps: Int) -> [Double] {
        guard group.size > 1, !pattern.allReduceFloats.isEmpty || pattern.allGatherFloats != nil else {
            return [Double](repeating: 0, count: steps)
        }
        var buffers = pattern.allReduceFloats.map { [Float](repeating: 0, count: $0) }
        let gatherCounts = pattern.allGatherFloats.map { total in (0..<group.size).map { evenSplit(total, parts: group.size, part: $0).count } }
        func once() {
            for i in buffers.indices { group.allReduceSum(&buffers[i]) }
            if let counts = gatherCounts { _ = group.allGather([Float](repeating: 0, count: counts[group.rank]), counts: counts) }
        }
        group.waitApart = true
        defer { group.waitApart = false }
        group.barrier()
        for _ in 0..<warmup { once() }
        var samples = [Double]()
        for _ in 0..<steps {
            group.barrier()
            let c0 = group.collectiveSeconds
            once()
            samples.append(group.collectiveSeconds - c0)
        }
        return group.allReduceMax(samples)
    }
}
