import Foundation
import MLRACore

/// An exclusive lock on an output for the whole run: flock(2) on `<file>.lock`
/// beside it, which records the holder's host and pid. Two sweeps on one --out
/// (a mis-set array, a second terminal) would otherwise both measure every
/// configuration and interleave their rows (and, 1 start in 12, write two headers).
///
/// flock is released by the kernel when its holder dies, however it dies (SIGKILL,
/// OOM, a node reboot of a local file system), so a lock file left behind by a dead
/// run is stale by construction: the next run locks it and takes it over, and says
/// whose it was. On NFS, Linux maps flock onto POSIX byte-range locks, which the
/// server releases when the client's lease lapses.
///
/// The lock file is removed when the run ends. That is safe only because a run that
/// locks a file checks that the path still names the inode it locked (a run that
/// opened the file just before the holder removed it would otherwise lock a deleted
/// file while a third run locks a new one).
public final class RunLock {
    public let path: String
    /// "host H pid P" of a run that died holding this lock, if the file held one.
    public let takenOverFrom: String?
    private var fd: Int32

    /// Takes the lock for `file`, or throws naming the run that holds it.
    public init(for file: String) throws {
        path = file + ".lock"
        fd = -1
        var attempt = 0
        while true {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw HarnessError("\(path): cannot open the lock file (\(errnoText(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let code = errno
                let holder = Self.holder(fd)
                close(fd)
                guard code == EWOULDBLOCK else { throw HarnessError("\(path): cannot lock (\(errnoText(code)))") }
                throw HarnessError("\(file) is in use by another run (\(holder ?? "its host and pid are not recorded yet"); "
                                   + "lock file \(path)); wait for it to end, or write to another file")
            }
            var mine = stat(), named = stat()
            if fstat(fd, &mine) == 0, stat(path, &named) == 0, mine.st_ino == named.st_ino, mine.st_dev == named.st_dev { break }
            close(fd)   // the holder removed the file between our open and our flock: lock the new one
            attempt += 1
            guard attempt < 100 else { throw HarnessError("\(path): the lock file keeps being replaced; is another run looping on it?") }
        }
        takenOverFrom = Self.holder(fd)
        let me = Array("host \(Self.hostName) pid \(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0 else { throw fail("cannot record the lock's holder", errno) }
        let code = me.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) == $0.count ? 0 : (errno == 0 ? EIO : errno) }
        guard code == 0 else { throw fail("cannot record the lock's holder", code) }
    }

    private func fail(_ what: String, _ code: Int32) -> HarnessError {
        unlink(path)
        close(fd)
        fd = -1
        return HarnessError("\(path): \(what) (\(errnoText(code)))")
    }

    /// Removes the lock file and releases the lock (in this order: see the type's comment).
    public func release() {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
        fd = -1
    }

    deinit { release() }

    static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        return gethostname(&buf, buf.count) == 0 ? String(cString: buf) : "unknown-host"
    }

    /// "host H pid P", as the holder wrote it.
    static func holder(_ fd: Int32) -> String? {
        var buf = [UInt8](repeating: 0, count: 512)
        let n = pread(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        let text = String(decoding: buf[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
