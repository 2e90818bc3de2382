import Foundation
import MLRACore

/// A library opened once per process by one of CCuda's loaders, from the file or folder an
/// environment variable names or else from the library path (cuBLAS: MLRA_CUBLAS, NCCL:
/// MLRA_NCCL). A missing library is one sentence naming where the loader looked.
final class RuntimeLibrary: @unchecked Sendable {
    /// CCuda's loader: (path, opened, its length, error, its length) → 0 on success.
    typealias Loader = (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?, Int) -> Int32
    private let lock = NSLock()
    private var opened = ""
    private let variable: String, prefix: String, loader: Loader

    /// `prefix` begins the error sentence (what asked for the library), when there is one.
    init(variable: String, prefix: String = "", loader: @escaping Loader) {
        self.variable = variable; self.prefix = prefix; self.loader = loader
    }

    /// Opens the library (once); returns the path opened.
    func load() throws -> String {
        lock.lock(); defer { lock.unlock() }
        if !opened.isEmpty { return opened }
        var path = [CChar](repeating: 0, count: 4096), err = [CChar](repeating: 0, count: 4096)
        guard loader(ProcessInfo.processInfo.environment[variable], &path, path.count, &err, err.count) == 0 else {
            throw HarnessError(prefix + String(cString: err))
        }
        opened = String(cString: path)
        return opened
    }
}
