#if canImport(Glibc)
import Glibc
#endif

/// Thin, throwing wrappers around the POSIX calls the spool needs. Every failure
/// becomes a ``SpoolError`` naming the operation and the path; EINTR is retried.
enum FileIO {
    static let fileMode: mode_t = 0o640
    static let directoryMode: mode_t = 0o750

    /// Creates `path` (which must not exist), writes `bytes`, fsyncs and closes it.
    /// On failure the partial file is unlinked before the error is thrown.
    static func writeNewFile(_ path: String, _ bytes: [UInt8], sync: Bool = true, owner: SpoolOwner? = nil) throws {
        let fd = try openFile(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode, "create")
        do {
            if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
                throw SpoolError.system("chown", path, Glibc.errno)
            }
            try writeAll(fd, bytes, path)
            if sync {
                try fsyncDescriptor(fd, path)
            }
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        if close(fd) != 0 {
            let code = Glibc.errno
            // close() may report a deferred write error (NFS, some FUSE file systems).
            if code != EINTR {
                unlink(path)
                throw SpoolError.system("close", path, code)
            }
        }
    }

    static func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0, _ operation: String) throws -> Int32 {
        while true {
            let fd = open(path, flags, mode)
            if fd >= 0 { return fd }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SpoolError.system(operation, path, code)
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    let code = Glibc.errno
                    if code == EINTR { continue }
                    throw SpoolError.system("write", path, code)
                }
                offset += written
            }
        }
    }

    static func fsyncDescriptor(_ fd: Int32, _ path: String) throws {
        while fsync(fd) != 0 {
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SpoolError.system("fsync", path, code)
        }
    }

    /// fsync of a directory: makes the entries created, renamed or removed in it durable.
    static func syncDirectory(_ path: String) throws {
        let fd = try openFile(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, "open directory")
        defer { close(fd) }
        try fsyncDescriptor(fd, path)
    }

    /// syncfs(2) of the file system holding `path`: everything written to it so far (file
    /// data, inodes, directory entries, by any process) is on stable storage when this
    /// returns. One device flush for many files, where an fsync of each costs one each.
    /// Since Linux 5.8 it reports a write-back error of any of those files.
    static func syncFileSystem(_ path: String) throws {
        let fd = try openFile(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, "open directory")
        defer { close(fd) }
        guard let call = syncFSCall else { throw SpoolError.system("syncfs", path, ENOSYS) }
        if call(fd) != 0 { throw SpoolError.system("syncfs", path, Glibc.errno) }
    }

    /// glibc's syncfs, which the Glibc module does not import (it is a GNU extension).
    private static let syncFSCall: (@convention(c) (Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syncfs") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Int32).self)
    }()

    /// The whole file. `nil` if it does not exist.
    static func readFile(_ path: String) throws -> [UInt8]? {
        try readFileStamped(path)?.bytes
    }

    /// The whole file and its modification time in nanoseconds, both of the one inode
    /// opened (a file replaced by rename meanwhile is read whole, old or new, with its own
    /// stamp). `nil` if it does not exist.
    ///
    /// The size `fstat` gives is read in one call where it can be, without a second read
    /// to see the end: Herald's spool files are written once and replaced by rename, never
    /// grown in place, so a file read to that size is read whole. (A file of size 0, like
    /// a pseudo-file, is read until the end.)
    static func readFileStamped(_ path: String) throws -> (bytes: [UInt8], modified: Int64)? {
        let fd: Int32
        do {
            fd = try openFile(path, O_RDONLY | O_CLOEXEC, 0, "open")
        } catch let error as SpoolError where error.errno == ENOENT {
            return nil
        }
        return try readOpened(fd, path)
    }

    /// ``readFileStamped(_:)`` of `name` in the open directory `directory` (one path
    /// component to look up instead of the whole path); `path` names it in errors.
    static func readFileStamped(in directory: Int32, _ name: UnsafePointer<CChar>, path: @autoclosure () -> String) throws
        -> (bytes: [UInt8], modified: Int64)? {
        var fd: Int32
        repeat {
            fd = openat(directory, name, O_RDONLY | O_CLOEXEC)
        } while fd < 0 && Glibc.errno == EINTR
        if fd < 0 {
            let code = Glibc.errno
            if code == ENOENT { return nil }
            throw SpoolError.system("open", path(), code)
        }
        return try readOpened(fd, path())
    }

    /// The size of `name` in the open directory `directory`, nil if it does not exist.
    static func fileSize(in directory: Int32, _ name: UnsafePointer<CChar>, path: @autoclosure () -> String) throws -> Int? {
        var info = stat()
        if fstatat(directory, name, &info, 0) == 0 { return Int(info.st_size) }
        let code = Glibc.errno
        if code == ENOENT { return nil }
        throw SpoolError.system("stat", path(), code)
    }

    /// Reads the open file `fd` whole and closes it.
    private static func readOpened(_ fd: Int32, _ path: @autoclosure () -> String) throws -> (bytes: [UInt8], modified: Int64) {
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SpoolError.system("fstat", path(), Glibc.errno) }
        let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        let expected = Int(info.st_size)
        var result = [UInt8](repeating: 0, count: expected)
        var filled = 0
        while filled < expected {
            let count = try result.withUnsafeMutableBytes { buffer in
                try readSome(fd, buffer.baseAddress! + filled, expected - filled, path())
            }
            if count == 0 { break }
            filled += count
        }
        if filled < expected {
            result.removeLast(expected - filled)   // shrunk since fstat: what was there
            return (result, modified)
        }
        if expected > 0 { return (result, modified) }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try readSome(fd, $0.baseAddress!, $0.count, path()) }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return (result, modified)
    }

    /// One `read(2)`, repeated on EINTR: the count read, 0 at the end of the file.
    private static func readSome(_ fd: Int32, _ into: UnsafeMutableRawPointer, _ count: Int, _ path: String) throws -> Int {
        while true {
            let read = Glibc.read(fd, into, count)
            if read >= 0 { return read }
            let code = Glibc.errno
            if code != EINTR { throw SpoolError.system("read", path, code) }
        }
    }

    /// rename(2): atomic replacement of `to` on the same file system.
    static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 {
            throw SpoolError.system("rename to \(to)", from, Glibc.errno)
        }
    }

    /// unlink(2); a missing file is `false`, not an error.
    @discardableResult
    static func unlinkIfPresent(_ path: String) throws -> Bool {
        if unlink(path) == 0 { return true }
        let code = Glibc.errno
        if code == ENOENT { return false }
        throw SpoolError.system("unlink", path, code)
    }

    /// Cleanup path: unlink and ignore any error (the caller is already failing).
    static func unlinkQuietly(_ path: String) {
        _ = unlink(path)
    }

    /// mkdir(2); returns whether this call created it. An existing directory is fine.
    @discardableResult
    static func makeDirectory(_ path: String, owner: SpoolOwner? = nil) throws -> Bool {
        if mkdir(path, directoryMode) == 0 {
            if let owner, chown(path, owner.uid, owner.gid) != 0 { throw SpoolError.system("chown", path, Glibc.errno) }
            return true
        }
        let code = Glibc.errno
        if code == EEXIST && isDirectory(path) { return false }
        throw SpoolError.system("mkdir", path, code)
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// Size in octets, `nil` if the file does not exist.
    static func fileSize(_ path: String) throws -> Int? {
        var info = stat()
        if stat(path, &info) == 0 { return Int(info.st_size) }
        let code = Glibc.errno
        if code == ENOENT { return nil }
        throw SpoolError.system("stat", path, code)
    }

    /// Names in a directory, without "." and "..". A missing directory is empty.
    static func list(_ path: String) throws -> [String] {
        var names: [String] = []
        try forEachEntry(path) { name, _ in names.append(name) }
        return names
    }

    /// The entries of a directory (without `.` and `..`), each with whether it is a
    /// regular file: from the directory entry's type where the file system gives one
    /// (tmpfs, ext4, xfs…), else from `lstat`.
    static func listEntries(_ path: String) throws -> [(name: String, isRegularFile: Bool)] {
        var entries: [(name: String, isRegularFile: Bool)] = []
        try forEachEntry(path) { name, type in
            entries.append((name, type == UInt8(DT_UNKNOWN) ? isRegularFile(path + "/" + name) : type == UInt8(DT_REG)))
        }
        return entries
    }

    /// Calls `body` with each entry's name and `d_type` (`.` and `..` left out). A
    /// missing directory has none.
    private static func forEachEntry(_ path: String, _ body: (String, UInt8) -> Void) throws {
        guard let dir = opendir(path) else {
            let code = Glibc.errno
            if code == ENOENT { return }
            throw SpoolError.system("opendir", path, code)
        }
        defer { closedir(dir) }
        while true {
            Glibc.errno = 0
            guard let entry = readdir(dir) else {
                let code = Glibc.errno
                if code != 0 { throw SpoolError.system("readdir", path, code) }
                break
            }
            let name = entryName(entry)
            if name != "." && name != ".." {
                body(name, UnsafeRawPointer(entry).load(fromByteOffset: typeOffset, as: UInt8.self))
            }
        }
    }

    private static let typeOffset = MemoryLayout<dirent>.offset(of: \dirent.d_type)!

    private static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    private static let recordLengthOffset = MemoryLayout<dirent>.offset(of: \dirent.d_reclen)!

    /// The name in a `dirent` that `readdir` returned, read in place. `readdir` only
    /// promises `d_reclen` octets of the record (the name is as long as it needs to be,
    /// not 256 octets), so neither the struct nor its `d_name` array may be copied: for
    /// the last entry of a buffer that copy reads past its end (a crash once the buffer
    /// ends at an unmapped page, which large spool directories make likely).
    static func entryName(_ entry: UnsafePointer<dirent>) -> String {
        let record = UnsafeRawPointer(entry)
        let recordLength = Int(record.loadUnaligned(fromByteOffset: recordLengthOffset, as: UInt16.self))
        let name = (record + nameOffset).assumingMemoryBound(to: CChar.self)
        let length = strnlen(name, max(0, recordLength - nameOffset))
        return String(decoding: UnsafeRawBufferPointer(start: name, count: length), as: UTF8.self)
    }

    /// Removes a file, or a directory tree (used only for garbage in `tmp/`).
    static func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            let code = Glibc.errno
            if code == ENOENT { return }
            throw SpoolError.system("lstat", path, code)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in try list(path) {
                try removeTree(path + "/" + name)
            }
            if rmdir(path) != 0 && Glibc.errno != ENOENT {
                throw SpoolError.system("rmdir", path, Glibc.errno)
            }
        } else {
            try unlinkIfPresent(path)
        }
    }
}

/// Cross-process, per-message mutual exclusion for `update`, `move` and `remove`, so that
/// `herald queue hold` in one process and a delivery update in the server cannot
/// interleave on the same message (the update would otherwise recreate a `.env` the
/// CLI just moved away, leaving the message in two queues).
///
/// An open-file-description lock (`F_OFD_SETLKW`, Linux 3.15+) on one byte of
/// `<spool>/spool.lock` chosen by a hash of the id: fine-grained, released by the kernel
/// if the process dies, and exclusive between threads as well as processes because every
/// holder opens its own descriptor. Where OFD locks are unavailable (EINVAL) it falls back
/// to classic POSIX record locks, which still exclude other processes.
struct MessageLock {
    // Linux values (asm-generic/fcntl.h); not exported by the Swift Glibc module.
    private static let ofdSetLockWait: Int32 = 38

    static func withLock<T>(_ lockPath: String, slot: UInt32, _ body: () throws -> T) throws -> T {
        let fd = try FileIO.openFile(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, FileIO.fileMode, "open lock file")
        defer { close(fd) }  // closing the description releases an OFD lock
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(slot)
        lock.l_len = 1
        lock.l_pid = 0
        var command = ofdSetLockWait
        while fcntl(fd, command, &lock) != 0 {
            let code = Glibc.errno
            if code == EINTR { continue }
            if code == EINVAL && command == ofdSetLockWait {
                command = F_SETLKW
                continue
            }
            throw SpoolError.system("lock", lockPath, code)
        }
        return try body()
    }
}

/// Who the files of a spool that root works on must belong to: the spool directory's
/// owner, when that is not root (the daemon's user), so that `herald queue …` run as root
/// never leaves files the daemon cannot read or replace.
struct SpoolOwner: Sendable, Equatable {
    var uid: uid_t
    var gid: gid_t

    /// For the spool at `path`: nil when this process is not root or the spool is root's
    /// (nothing to do); throws ``SpoolError/wrongUser(path:owner:user:)`` when this
    /// process is neither root nor the spool's owner (it could only half-work there).
    static func check(_ path: String) throws -> SpoolOwner? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }   // made by this process
        let me = geteuid()
        if me == 0 { return info.st_uid == 0 ? nil : SpoolOwner(uid: info.st_uid, gid: info.st_gid) }
        guard info.st_uid == me else {
            throw SpoolError.wrongUser(path: path, owner: userName(info.st_uid), user: userName(me))
        }
        return nil
    }

    static func userName(_ uid: uid_t) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return "user \(String(cString: name)) (uid \(uid))"
    }
}
