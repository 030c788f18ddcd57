import Foundation
import Glibc
import HeraldTestSupport
import Testing

@testable import Spool

@Suite("Spool on a full disk")
struct DiskFullTests {
    /// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, as in the dev
    /// container). Elsewhere mount(2) fails with EPERM and the test below is skipped:
    /// filling a real disk to test ENOSPC would disturb everything else on the machine.
    static let canMountTmpfs: Bool = {
        guard getuid() == 0, let directory = try? SpoolFixtures.makeTemporaryDirectory(prefix: "herald-mount-probe")
        else { return false }
        defer { rmdir(directory) }
        guard mount("tmpfs", directory, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount2(directory, 0)
        return true
    }()

    /// A tmpfs of `size` (e.g. "256k") mounted on a new temporary directory, only root may
    /// enter; nil, with the failure recorded, if the mount fails.
    static func mountTmpfs(size: String, prefix: String) throws -> String? {
        let mountPoint = try SpoolFixtures.makeTemporaryDirectory(prefix: prefix)
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=\(size),mode=0700") == 0 else {
            Issue.record("mount failed: \(String(cString: strerror(errno)))")
            rmdir(mountPoint)
            return nil
        }
        return mountPoint
    }

    static func unmountTmpfs(_ mountPoint: String) {
        umount2(mountPoint, 0)
        rmdir(mountPoint)
    }

    @Test(
        "store on a full disk throws isDiskFull and leaves no partial pair in queue/ and nothing in tmp/",
        .enabled(if: DiskFullTests.canMountTmpfs, "mounting a 256 KiB tmpfs needs root (mount fails with EPERM)"))
    func diskFull() async throws {
        guard let mountPoint = try Self.mountTmpfs(size: "256k", prefix: "herald-full-disk") else { return }
        defer { Self.unmountTmpfs(mountPoint) }
        let spool = try Spool(path: mountPoint + "/spool")
        var committed: [QueueID: [UInt8]] = [:]
        var failures: [SpoolError] = []

        func checkInvariants() throws {
            #expect(filesUnder(mountPoint + "/spool/tmp").isEmpty)
            let files = filesUnder(mountPoint + "/spool/queue")
            let envelopes = Set(files.filter { $0.hasSuffix(".env") }.map { $0.dropLast(4) })
            let messages = Set(files.filter { $0.hasSuffix(".msg") }.map { $0.dropLast(4) })
            #expect(envelopes == messages, "half pair in queue/: \(files)")
            #expect(Set(try spool.enumerate(.queue)) == Set(committed.keys))
        }

        // Fill it with 40 kB messages, then keep trying ever smaller ones so that the
        // failure also lands on the envelope write and on directory creation.
        var size = 40_000
        var attempts = 0
        while size >= 10 && attempts < 200 {
            attempts += 1
            let message = SpoolFixtures.message(tag: "fill \(attempts)", size: size)
            do {
                let stored = try await spool.store(message: message, envelope: SpoolFixtures.envelope())
                committed[stored.id] = message
            } catch let error as SpoolError {
                failures.append(error)
                try checkInvariants()
                size /= 2
            }
        }
        #expect(!committed.isEmpty)
        #expect(!failures.isEmpty)
        #expect(failures.allSatisfy { $0.isDiskFull }, "\(failures)")
        try checkInvariants()
        for (id, message) in committed {
            #expect(try spool.loadMessage(id, in: .queue) == message)
        }

        // Freeing space makes the spool usable again.
        for id in committed.keys.prefix(2) {
            try spool.remove(id, from: .queue)
        }
        _ = try await spool.store(message: SpoolFixtures.message(size: 1000), envelope: SpoolFixtures.envelope())
        #expect(try spool.recover().movedToCorrupt == 0)
    }
}
