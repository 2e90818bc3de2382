import Foundation
import MLRACore
import MLRAParallel

/// Runs an MPI command body on every rank. Errors every rank agreed on
/// (`Communicator.collectively`) are printed once by rank 0 and every rank exits
/// with the error's status (ExitStatus); any other error is rank-local, so it aborts
/// the whole job (MPI_Abort) with a line naming the rank, instead of leaving the
/// others blocked in a collective.
func runParallel(_ body: (Communicator) throws -> Void) throws {
    let world = MPI.world()
    do {
        try body(world)
    } catch let e as AgreedError {
        // Rank 0 writes the line before any rank exits: mpirun ends the job at the first
        // non-zero exit, and could otherwise kill rank 0 before its line is out (seen in
        // CI under load: a failed job with no error line).
        if world.rank == 0 { FileHandle.standardError.write(Data(errorLine(e.message, e.kind).utf8)) }
        world.barrier()
        MPI.finalize()
        Foundation.exit(ExitStatus.of(e.kind))
    } catch let e as HarnessError {
        MPI.abort(e.message, code: ExitStatus.of(e.kind))
    } catch {
        MPI.abort("\(error)")
    }
    MPI.finalize()
}

/// What every rank actually allocated and communicated, gathered on all ranks
/// (a collective: call it on every rank). Printed by `--stats`.
struct RunStats {
    let json: String

    init(world: Communicator, cacheRowBytes: Int, cacheAllocatedBytes: Int) {
        let counts = [Double(world.allReduceCount), Double(world.allGatherCount), Double(world.allReduceBytes)]
        let rows = world.allGatherDoubles([Double(cacheRowBytes), Double(cacheAllocatedBytes)] + counts)
        let per = (0..<world.size).map { Array(rows[($0 * 5)..<($0 * 5 + 5)]).map { Int($0) } }
        func list(_ i: Int) -> String { "[" + per.map { String($0[i]) }.joined(separator: ",") + "]" }
        json = "{\"ranks\":\(world.size),\"cache_row_bytes\":\(list(0)),\"cache_allocated_bytes\":\(list(1)),"
            + "\"allreduce_calls\":\(list(2)),\"allgather_calls\":\(list(3)),\"allreduce_bytes\":\(list(4))}"
    }
}
