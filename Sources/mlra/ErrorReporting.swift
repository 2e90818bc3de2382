import Foundation
import MLRACore

/// Runs `body`; a HarnessError becomes one line on stderr and exit status 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as HarnessError {
        FileHandle.standardError.write(Data("mlra: error: \(e.message)\n".utf8))
        exit(1)
    }
}

/// Fails early, before any work, when `path` cannot be written.
func checkWritable(_ path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let folder = dir.isEmpty ? "." : dir
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
        throw HarnessError("\(path): folder '\(folder)' does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: folder) else {
        throw HarnessError("\(path): folder '\(folder)' is not writable")
    }
}
