#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Work a `WorkerPool` runs: part `part` of `parts`, called once per part per dispatch.
public protocol PoolTask: AnyObject {
    func work(part: Int)
}

/// Persistent worker threads for the decode kernel: `parts − 1` pthreads plus the
/// calling thread. A dispatch allocates nothing and creates no thread: the caller
/// bumps a generation counter, workers that are spinning see it at once, workers
/// that fell asleep (after ~50 µs idle, so an idle pool does not burn a core on a
/// shared machine) are woken through a condition variable. The caller runs part 0
/// and then waits for the others on an atomic counter.
public final class WorkerPool: @unchecked Sendable {
    public let parts: Int
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private var threads: [pthread_t] = []
    /// The task of the current dispatch; set only while no worker is running.
    private unowned(unsafe) var task: PoolTask?

    /// Spins before a worker sleeps; ~50 µs on a 2.6 GHz core.
    private static let spinsBeforeSleep = 50_000

    /// Starts `parts − 1` threads. A thread the system refuses (a process or memory
    /// limit: EAGAIN) is an error naming the count, not a trap; the threads already
    /// started are stopped and joined first, so nothing is left running.
    public init(parts: Int) throws {
        guard parts >= 1 else { throw HarnessError("a worker pool needs at least one part, got \(parts)") }
        self.parts = parts
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        for index in 1..<parts {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index))
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.workerLoop(index: ctx.index)
                return nil
            }, context.toOpaque())
            guard rc == 0 else {
                context.release()   // the thread that would have taken it never started
                stop()
                throw HarnessError("cannot start kernel thread \(index + 1) of \(parts): pthread_create failed (\(String(cString: strerror(rc))))")
            }
            threads.append(thread)
        }
    }

    deinit {
        stop()
        pthread_cond_destroy(wake); pthread_mutex_destroy(mutex)
        wake.deallocate(); mutex.deallocate()
    }

    /// Stops and joins every started worker (idempotent: the list is emptied).
    private func stop() {
        stopping.store(true, ordering: .releasing)
        pthread_mutex_lock(mutex)
        generation.add(1, ordering: .releasing)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }

    /// Cores online on this node (not the affinity mask, which `mpirun` narrows to one
    /// core per rank): the most kernel threads one rank may run.
    public static var coresOnline: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// `--threads` and a sweep's thread counts: at least 1 and at most the node's cores.
    /// More threads than cores only time the scheduler, and an unbounded count once
    /// used up the machine's process IDs.
    public static func checkThreads(_ n: Int, _ what: String, cores: Int = coresOnline) throws {
        guard n >= 1 else { throw HarnessError("\(what) must be at least 1, got \(n)") }
        guard n <= cores else {
            throw HarnessError("\(what) \(n) is more than the \(cores) cores of this node; at most one kernel thread per core is supported")
        }
    }

    /// Runs `task.work(part:)` for parts 0 ..< parts, part 0 on the caller; returns when all are done.
    public func run(_ task: PoolTask) {
        if parts == 1 { task.work(part: 0); return }
        self.task = task
        pending.store(parts - 1, ordering: .relaxed)
        pthread_mutex_lock(mutex)
        generation.add(1, ordering: .releasing)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        task.work(part: 0)
        var spins = 0
        while pending.load(ordering: .acquiring) != 0 {
            spins += 1
            // Yield now and then: on an oversubscribed machine the worker may need this core.
            if spins & 1023 == 0 { sched_yield() }
        }
        self.task = nil
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var current = generation.load(ordering: .acquiring)
            var spins = 0
            while current == seen && spins < Self.spinsBeforeSleep {
                spins += 1
                current = generation.load(ordering: .acquiring)
            }
            if current == seen {
                pthread_mutex_lock(mutex)
                while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(wake, mutex) }
                pthread_mutex_unlock(mutex)
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            task!.work(part: index)
            pending.subtract(1, ordering: .releasing)
        }
    }
}

/// A worker's start argument; unowned so that the pool's deinit (which joins the workers) can run.
private final class WorkerContext {
    unowned(unsafe) let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
}
