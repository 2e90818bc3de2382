import Foundation

// Durable writes: every output of the harness goes through these few functions,
// so what "never half-written" means is decided in one place. Every system call's
// result is checked (fsync's included: a failed fsync means the data may not be on
// disk, and saying nothing would turn a lost result into a silent one).

/// The reason for an errno in words, e.g. "no space left on device (ENOSPC)".
public func errnoText(_ code: Int32) -> String {
    let names: [Int32: String] = [ENOSPC: "ENOSPC", EDQUOT: "EDQUOT", EFBIG: "EFBIG", EIO: "EIO", EACCES: "EACCES",
                                  EROFS: "EROFS", ENOENT: "ENOENT", EPERM: "EPERM", EISDIR: "EISDIR", EBADF: "EBADF"]
    let words = String(cString: strerror(code))
    let lowered = words.prefix(1).lowercased() + words.dropFirst()
    return names[code].map { "\(lowered) (\($0))" } ?? lowered
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR. Returns 0, or the
/// errno that stopped it. A short write is not an error by itself (POSIX allows it,
/// e.g. when the disk fills up mid-write), and errno is meaningless after one
/// (strerror would say "Success"): the retry makes the kernel say why it stopped.
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
        if n > 0 { done += n; continue }
        if n < 0 && errno == EINTR { continue }
        return n == 0 ? EIO : errno   // write(2) returning 0 for a non-empty buffer: no progress, report an I/O error
    }
    return 0
}

/// fsync on a folder, so a rename or a newly created file inside it survives a crash.
public func fsyncFolder(_ folder: String) -> Int32 {
    let fd = open(folder, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    return fsync(fd) == 0 ? 0 : errno
}

/// The folder a path lies in ("." for a bare name).
public func folderOf(_ path: String) -> String {
    let dir = (path as NSString).deletingLastPathComponent
    return dir.isEmpty ? "." : dir
}

/// Fails early, before any work, when `path` cannot be written: its folder must
/// exist and be writable.
public func checkWritable(_ path: String) throws {
    let folder = folderOf(path)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) else {
        throw HarnessError("\(path): folder '\(folder)' does not exist")
    }
    guard isDir.boolValue else { throw HarnessError("\(path): '\(folder)' is not a folder") }
    guard FileManager.default.isWritableFile(atPath: folder) else {
        throw HarnessError("\(path): folder '\(folder)' is not writable")
    }
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        throw HarnessError("\(path) is a folder, not a file")
    }
}

/// Replaces `path` with `data` so that at every moment the path holds either the
/// old file or the complete new one: a temporary file in the same folder (so the
/// rename stays on one file system), fsync, rename(2) over the target (atomic),
/// fsync of the folder (so the rename itself is durable). On any failure the
/// temporary file is removed and the target is left exactly as it was.
/// (FileManager.replaceItemAt is not used: on Linux it moved the old file onto the
/// temporary one and then deleted both when the second step failed.)
public func writeAtomically(_ data: Data, to path: String) throws {
    let folder = folderOf(path)
    let name = (path as NSString).lastPathComponent
    var template = Array("\(folder)/.\(name).tmp-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw HarnessError("\(path): cannot create a temporary file in '\(folder)' (\(errnoText(errno)))") }
    let tmp = String(cString: template)
    func fail(_ what: String, _ code: Int32) -> HarnessError {
        close(fd)
        unlink(tmp)
        return HarnessError("\(path): cannot write: \(what) failed (\(errnoText(code))); the old file, if any, is unchanged")
    }
    // mkstemp creates 0600; outputs are ordinary files others may read.
    guard fchmod(fd, 0o644) == 0 else { throw fail("chmod", errno) }
    let code = writeAll(fd, [UInt8](data))
    guard code == 0 else { throw fail("write", code) }
    guard fsync(fd) == 0 else { throw fail("fsync", errno) }
    guard close(fd) == 0 else { let e = errno; unlink(tmp); throw HarnessError("\(path): cannot write: close failed (\(errnoText(e)))") }
    guard rename(tmp, path) == 0 else {
        let e = errno
        unlink(tmp)
        throw HarnessError("\(path): cannot write: rename failed (\(errnoText(e))); the old file, if any, is unchanged")
    }
    let dirCode = fsyncFolder(folder)
    guard dirCode == 0 else { throw HarnessError("\(path): written, but fsync of its folder '\(folder)' failed (\(errnoText(dirCode)))") }
}
