import Foundation

/// The campaigns whose mail this spool must not deliver now: `<spool>/held-campaigns`,
/// one campaign tag (the envelope's `campaign`, e.g. `7`) per line, sorted.
///
/// A campaign pause is a property of the campaign, not of each message: its messages
/// stay in `queue/` (their pacing and retry state intact) and the queue manager skips
/// them while their tag is listed here. The file is what the node last learnt from the
/// campaign store, so a restart holds the same mail before the store is reachable again.
/// It is replaced atomically (written in `tmp/00/`, fsync, rename, fsync of the spool directory); a
/// missing file holds nothing. `herald queue list` reads it to say why a message waits.
extension Spool {
    public var heldCampaignsPath: String { path + "/held-campaigns" }

    /// The listed campaign tags (empty when the file does not exist).
    public func heldCampaigns() throws -> Set<String> {
        guard let bytes = try FileIO.readFile(heldCampaignsPath) else { return [] }
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
        return Set(lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    /// Replaces the list durably. Tags are single tokens (no white space).
    public func setHeldCampaigns(_ tags: Set<String>) throws {
        for tag in tags where tag.isEmpty || tag.contains(where: { $0.isWhitespace }) {
            throw SpoolError.ioFailure(operation: "list held campaign \"\(tag)\" (empty or white space)",
                                       path: heldCampaignsPath, errno: EINVAL)
        }
        let text = tags.sorted().map { $0 + "\n" }.joined()
        let temporary = temporaryDirectory + "/00/held-campaigns.\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileIO.writeNewFile(temporary, Array(text.utf8), owner: owner)
        do {
            try FileIO.rename(temporary, heldCampaignsPath)
        } catch {
            FileIO.unlinkQuietly(temporary)
            throw error
        }
        try FileIO.syncDirectory(path)
    }
}
