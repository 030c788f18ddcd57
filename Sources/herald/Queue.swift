import ArgumentParser
import Delivery
import Foundation
import Herald
import Spool

/// `herald queue …`: the postmaster's view of the spool. These commands work on a live
/// spool while `herald serve` runs: they only read files, or act through the spool's
/// atomic renames and envelope replacements (docs/architecture.md "Spool format"), never by
/// editing a file in place.
struct Queue: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and steer the spool.",
        subcommands: [QueueList.self, QueueShow.self, QueueHold.self, QueueRelease.self, QueueDelete.self,
                      QueueRetry.self, QueueStats.self])
}

struct SpoolAccess {
    let spool: Spool
    let config: HeraldConfig

    init(_ options: ConfigOption) throws {
        let config = try options.load()
        guard FileManager.default.fileExists(atPath: config.spoolPath) else {
            fail("no spool at \(config.spoolPath)")
        }
        spool = try Spool(path: config.spoolPath)
        spool.includeJournalSegments()
        self.config = config
    }

    /// What the running daemon last published about its destination queues
    /// (`<log dir>/queue-state.json`, rewritten every 2 s), or nil when it is missing or
    /// older than 30 s (no daemon, or delivery off).
    func daemonState(now: Date = Date()) -> QueueManager.State? {
        guard let logDir = config.logPath,
              let data = FileManager.default.contents(atPath: logDir + "/queue-state.json") else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let state = try? decoder.decode(QueueManager.State.self, from: data),
              now.timeIntervalSince(state.time) < 30 else { return nil }
        return state
    }

    /// Every message in `queues`, oldest first, skipping ones that vanish mid-scan
    /// (delivered or deleted while we look).
    func entries(_ queues: [SpoolQueue]) -> [(SpoolQueue, Envelope)] {
        var out: [(SpoolQueue, Envelope)] = []
        for q in queues {
            for id in (try? spool.enumerate(q)) ?? [] {
                if let env = try? spool.loadEnvelope(id, in: q) { out.append((q, env)) }
            }
        }
        return out.sorted { $0.1.id < $1.1.id }
    }

    func resolve(_ text: String) -> (QueueID, SpoolQueue) {
        guard let id = QueueID(text) else { fail("\(text): not a queue id", code: 2) }
        guard let q = spool.locate(id) else { fail("\(text): no such message" + journalHint(spool), code: 1) }
        return (id, q)
    }
}

extension QueueManager.DestinationState {
    /// When the daemon's back-off of this destination ends, if it still lasts at `now`.
    func backoffUntil(after now: Date) -> Date? {
        guard let pausedUntil, pausedUntil > now else { return nil }
        return pausedUntil
    }
}

/// One formatter for the whole run (making one per row was most of the time `queue list`
/// spent on a large spool). The CLI formats on one thread only.
nonisolated(unsafe) private let iso8601Formatter: ISO8601DateFormatter = {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f
}()

func iso8601(_ date: Date) -> String {
    iso8601Formatter.string(from: date)
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The selection of `hold|release|delete|retry`: ids (`-` reads them from standard
/// input), `--all`, or selectors (`--campaign`, `--tenant`, `--domain`, `--state`,
/// `--older`, the same as `queue list` takes). Ids cannot be mixed with the others;
/// `--all` with selectors means the same as the selectors alone.
struct Selection: ParsableArguments {
    @Argument(help: "Queue ids; - reads ids from standard input (separated by white space).")
    var ids: [String] = []

    @Flag(help: "Every message the command applies to.")
    var all = false

    @Option(help: ArgumentHelp(
        "With the spool journal on: how long to wait for herald serve to write out messages accepted moments ago (seconds).",
        valueName: "seconds"))
    var journalWait: Double = 30

    @OptionGroup(title: "Selectors (instead of ids)")
    var filter: MessageFilter

    func validate() throws {
        if !ids.isEmpty && (all || filter.isActive) {
            throw ValidationError(all ? "give queue ids or --all (not both)"
                                      : "give queue ids or selectors (--campaign, --tenant, --domain, --state, --older), not both")
        }
        if ids.isEmpty && !all && !filter.isActive {
            throw ValidationError("give queue ids, --all, or selectors (--campaign, --tenant, --domain, --state, --older)")
        }
        if ids.contains("-") && ids.count > 1 { throw ValidationError("- reads the ids from standard input: give no others") }
        if !(journalWait >= 0 && journalWait <= 3600) { throw ValidationError("--journal-wait takes 0 to 3600 seconds") }
    }

    /// Many messages picked by a rule rather than named: gone-meanwhile is not an error,
    /// and a count is printed at the end.
    var isBulk: Bool { ids.isEmpty }
}

/// Opens the spool of `options` and runs `action` on each selected message found in
/// `from`, printing one line each; ends with exit status 1 or 2 when any failed.
///
/// With the spool journal on, a message accepted moments ago has no files yet: the
/// server holds it in its journal and writes it out within seconds (when its segment
/// retires). Such a message cannot be changed from here, so the command waits until the
/// segments that hold such messages are retired (at most `--journal-wait` seconds), then acts on the
/// files. Bulk selections are made again after that wait, and only messages accepted
/// after the command started are left alone (and counted).
func apply(_ selection: Selection, _ options: ConfigOption, from: [SpoolQueue], verb: String,
           _ action: (Spool, QueueID, SpoolQueue) throws -> Void) throws {
    let access = try SpoolAccess(options)
    var status: Int32 = 0
    var targets = collectTargets(selection, access, from: from, status: &status)
    let waiting = targets.filter { access.spool.isOnlyInJournal($0.0) }
    if !waiting.isEmpty {
        FileHandle.standardError.write(Data(
            "herald: \(waiting.count) message(s) accepted moments ago are still in herald serve's journal; waiting for it to write them out (at most \(Int(selection.journalWait)) s)\n".utf8))
        if access.spool.waitForJournalWriteOut(of: waiting.map { $0.0 }, timeout: selection.journalWait) {
            if selection.isBulk {
                var ignored: Int32 = 0
                targets = collectTargets(selection, access, from: from, status: &ignored)
            } else {
                targets = targets.filter { id, _ in
                    guard let q = access.spool.locate(id), from.contains(q) else {
                        FileHandle.standardError.write(Data("herald: \(id): no such message in \(from.map(\.rawValue).joined(separator: "/")) (delivered or removed meanwhile)\n".utf8))
                        status = max(status, 1)
                        return false
                    }
                    return true
                }
            }
        } else {
            let stuck = Set(waiting.map { $0.0 })
            for (id, _) in waiting where !selection.isBulk {
                FileHandle.standardError.write(Data("herald: \(id): still only in herald serve's journal after \(Int(selection.journalWait)) s (is herald serve running? a stopped server's journal is written out at its next start)\n".utf8))
            }
            if selection.isBulk {
                FileHandle.standardError.write(Data("herald: \(stuck.count) message(s) still only in herald serve's journal after \(Int(selection.journalWait)) s were left alone (is herald serve running?)\n".utf8))
            }
            targets.removeAll { stuck.contains($0.0) }
            status = max(status, 1)
        }
        let late = targets.filter { access.spool.isOnlyInJournal($0.0) }
        if !late.isEmpty {
            // Accepted after this command started: not part of what it was asked to change.
            FileHandle.standardError.write(Data("herald: \(late.count) message(s) accepted since this command started, still in the journal, were left alone\n".utf8))
            let skip = Set(late.map { $0.0 })
            targets.removeAll { skip.contains($0.0) }
        }
    }
    var done = 0
    for (id, q) in targets {
        do {
            try action(access.spool, id, q)
            print("\(id): \(verb)")
            done += 1
        } catch let error as SpoolError where error.isNotFound {
            // Gone meanwhile (delivered or deleted by someone else): not an error for --all.
            if !selection.isBulk {
                FileHandle.standardError.write(Data("herald: \(id): no such message\(journalHint(access.spool))\n".utf8))
                status = max(status, 1)
            }
        } catch {
            FileHandle.standardError.write(Data("herald: \(id): \(error)\n".utf8))
            status = max(status, 1)
        }
    }
    if selection.isBulk { print("\(done) message(s) \(verb)") }
    if status != 0 { throw ExitCode(status) }
}

/// The messages `selection` names in `from`; reports ids that are malformed or not
/// found (raising `status`).
private func collectTargets(_ selection: Selection, _ access: SpoolAccess, from: [SpoolQueue],
                            status: inout Int32) -> [(QueueID, SpoolQueue)] {
    var targets: [(QueueID, SpoolQueue)] = []
    if selection.filter.isActive {
        targets = access.select(from, selection.filter).map { ($0.envelope.id, $0.queue) }
    } else if selection.all {
        for q in from { targets += ((try? access.spool.enumerate(q)) ?? []).map { ($0, q) } }
    } else {
        let texts = selection.ids == ["-"] ? idsFromStandardInput() : selection.ids
        for text in texts {
            guard let id = QueueID(text) else {
                FileHandle.standardError.write(Data("herald: \(text): not a queue id\n".utf8))
                status = max(status, 2)
                continue
            }
            guard let q = access.spool.locate(id), from.contains(q) else {
                FileHandle.standardError.write(Data("herald: \(text): no such message in \(from.map(\.rawValue).joined(separator: "/"))\(journalHint(access.spool))\n".utf8))
                status = max(status, 1)
                continue
            }
            targets.append((id, q))
        }
    }
    return targets
}

struct QueueHold: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hold", abstract: "Put messages on hold.")
    @OptionGroup var options: ConfigOption
    @OptionGroup var selection: Selection
    func run() throws {
        try apply(selection, options, from: [.queue], verb: "held") { spool, id, q in
            try spool.move(id, from: q, to: .hold)
        }
    }
}

struct QueueRelease: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "release", abstract: "Release held messages.")
    @OptionGroup var options: ConfigOption
    @OptionGroup var selection: Selection
    func run() throws {
        try apply(selection, options, from: [.hold], verb: "released") { spool, id, q in
            try spool.move(id, from: q, to: .queue)
        }
    }
}

struct QueueDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete messages (from the queue or hold) without bouncing them.")
    @OptionGroup var options: ConfigOption
    @OptionGroup var selection: Selection
    func run() throws {
        try apply(selection, options, from: [.queue, .hold], verb: "deleted") { spool, id, q in
            try spool.remove(id, from: q)
        }
    }
}

struct QueueRetry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Make deferred recipients due for delivery now.")
    @OptionGroup var options: ConfigOption
    @OptionGroup var selection: Selection
    func run() throws {
        let now = Date()
        try apply(selection, options, from: [.queue], verb: "scheduled for retry") { spool, id, q in
            var env = try spool.loadEnvelope(id, in: q)
            var changed = false
            for i in env.recipients.indices where env.recipients[i].state == .deferred || env.recipients[i].state == .pending {
                if let next = env.recipients[i].nextAttempt, next <= now { continue }
                if env.recipients[i].nextAttempt == nil { continue }
                env.recipients[i].nextAttempt = now
                changed = true
            }
            if changed { try spool.update(env, in: q) }
        }
    }
}

/// For "no such message": with the spool journal on, a message accepted moments ago has
/// no files yet; this process can list and show it, not change it.
func journalHint(_ spool: Spool) -> String {
    spool.hasJournalSegments()
        ? " (or it is in herald serve's journal, accepted moments ago: it can be changed once written out, within seconds)"
        : ""
}
