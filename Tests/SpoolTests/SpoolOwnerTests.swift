import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

#if canImport(Glibc)
import Glibc
#endif

/// Root running `herald queue …` on a spool that belongs to the daemon's user leaves
/// nothing the daemon could not read or replace: what it creates goes to that user.
@Suite("Spool ownership", .enabled(if: geteuid() == 0))
struct SpoolOwnerTests {
    static func owner(_ path: String) -> uid_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_uid : 999_999
    }

    @Test func rootKeepsTheOwnersFiles() async throws {
        let dir = try TemporaryDirectory.make(prefix: "herald-owner")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/spool"
        // The daemon's spool: made by its user (nobody here).
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        #expect(chown(path, 65534, 65534) == 0)
        let spool = try Spool(path: path)
        for sub in ["queue", "hold", "corrupt", "tmp", "tmp/00", "spool.lock"] {
            #expect(Self.owner(path + "/" + sub) == 65534, "\(sub)")
        }
        let (id, envelope, _) = try await storeSample(spool)
        var changed = envelope
        changed.recipients[0].attempts = 1
        try spool.update(changed, in: .queue)
        try spool.setHeldCampaigns(["7"])
        let files = filesUnder(path)
        #expect(files.contains { $0.hasSuffix("\(id).env") } && files.contains { $0.hasSuffix("\(id).msg") })
        for file in files {
            #expect(Self.owner(path + "/" + file) == 65534, "\(file) belongs to \(Self.owner(path + "/" + file))")
        }
        // A root-owned spool stays root's: nothing is given away.
        let rootSpool = try Spool(path: dir + "/root-spool")
        try await storeSample(rootSpool)
        #expect(filesUnder(dir + "/root-spool").allSatisfy { Self.owner(dir + "/root-spool/" + $0) == 0 })
    }
}
