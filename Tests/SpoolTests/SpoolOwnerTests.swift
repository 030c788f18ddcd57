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

/// Finished marks of campaign messages: a campaign message marked finished cannot be
/// committed again under its id; other mail is not concerned; old marks are swept.
@Suite("Spool finished marks")
struct SpoolFinishedTests {
    @Test func aFinishedCampaignMessageIsNotCommittedAgain() async throws {
        let dir = try TemporaryDirectory.make(prefix: "herald-finished")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(path: dir + "/spool")
        var envelope = SpoolFixtures.envelope(recipients: ["a@example.net"])
        envelope.campaign = "7"
        let message = SpoolFixtures.message(tag: "campaign")
        _ = try await spool.store(message: message, envelope: envelope)
        try spool.markFinished(envelope.id)
        try spool.remove(envelope.id, from: .queue)
        #expect(spool.isFinished(envelope.id))
        await #expect(throws: SpoolError.self) { try await spool.store(message: message, envelope: envelope) }
        #expect(try spool.enumerate(.queue).isEmpty)
        // Mail without a campaign is not looked up.
        var plain = SpoolFixtures.envelope(id: envelope.id, recipients: ["a@example.net"])
        plain.campaign = nil
        _ = try await spool.store(message: message, envelope: plain)
        #expect(try spool.enumerate(.queue) == [envelope.id])
        // Marks older than the retention are swept, younger ones kept.
        #expect(spool.sweepFinished(shard: Int(envelope.id.shard, radix: 16) ?? 0, olderThan: 3600) == 0)
        #expect(spool.sweepFinished(shard: Int(envelope.id.shard, radix: 16) ?? 0, olderThan: 3600,
                                    now: Date().addingTimeInterval(7200)) == 1)
        #expect(!spool.isFinished(envelope.id))
    }
}
