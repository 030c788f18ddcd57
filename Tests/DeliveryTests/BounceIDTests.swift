@testable import Delivery
import Spool
import Testing

/// A DSN's id is derived from the original and its failed recipients, so a failure
/// replayed after a crash finds its DSN already in the spool (no second bounce).
@Suite struct BounceIDTests {
    @Test func sameFailureSameID() throws {
        let id = QueueID.generate()
        let a = QueueManager.bounceID(for: id, recipients: ["x@a.test", "y@b.test"])
        let b = QueueManager.bounceID(for: id, recipients: ["y@b.test", "x@a.test"])
        #expect(a == b)
        #expect(a != id)
        #expect(a.rawValue.prefix(QueueID.timeLength) == id.rawValue.prefix(QueueID.timeLength))
        #expect(QueueID(a.rawValue) != nil)
    }

    @Test func otherRecipientsOrMessagesGetOtherIDs() {
        let id = QueueID.generate()
        let other = QueueID.generate()
        let a = QueueManager.bounceID(for: id, recipients: ["x@a.test"])
        #expect(a != QueueManager.bounceID(for: id, recipients: ["y@a.test"]))
        #expect(a != QueueManager.bounceID(for: other, recipients: ["x@a.test"]))
    }

    @Test func storingTheSameDSNTwiceIsRefused() async throws {
        let dir = NSTemporaryDirectory() + "herald-bounceid-" + String(UInt64.random(in: 0...UInt64.max))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(path: dir)
        let original = QueueID.generate()
        let bid = QueueManager.bounceID(for: original, recipients: ["x@a.test"])
        let env = Envelope(id: bid, arrival: Date(), sender: "",
                           origin: EnvelopeOrigin(listener: "bounce", clientAddress: "127.0.0.1", authenticatedUser: nil,
                                                  helo: nil, tls: false),
                           recipients: [EnvelopeRecipient(address: "s@b.test")])
        _ = try await spool.store(message: Array("Subject: x\r\n\r\nx\r\n".utf8), envelope: env)
        await #expect(throws: SpoolError.self) {
            _ = try await spool.store(message: Array("Subject: x\r\n\r\nx\r\n".utf8), envelope: env)
        }
        #expect(try spool.enumerate(.queue) == [bid])
    }
}

import Foundation
