import Foundation
import MLRACore
import MLRAParallel

/// Runs an MPI command body on every rank. Errors every rank agreed on
/// (`Communicator.collectively`) are printed once by rank 0 and every rank exits
/// with status 1; any other error is rank-local, so it aborts the whole job
/// (MPI_Abort) with a line naming the rank, instead of leaving the others
/// blocked in a collective.
func runParallel(_ body: (Communicator) throws -> Void) throws {
    let world = MPI.world()
    do {
        try body(world)
    } catch let e as AgreedError {
        if world.rank == 0 { FileHandle.standardError.write(Data("mlra: error: \(e.message)\n".utf8)) }
        MPI.finalize()
        exit(1)
    } catch let e as HarnessError {
        MPI.abort(e.message)
    } catch {
        MPI.abort("\(error)")
    }
    MPI.finalize()
}
