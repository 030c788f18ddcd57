import Foundation
import Hummingbird
import Spool

/// `GET /healthz`: 200 with `{"status":"ok", …}` when the spool is writable (and the
/// database answers, when one is configured); 503 problem otherwise.
public struct Health: Sendable {
    let spool: Spool
    let database: (@Sendable () async -> Bool)?

    public init(spool: Spool, database: (@Sendable () async -> Bool)? = nil) {
        self.spool = spool
        self.database = database
    }

    struct Status: ResponseEncodable {
        var status: String
        var spool: String
        var database: String
    }

    public func add(to router: Router<HeraldRequestContext>) {
        router.get("healthz") { _, _ -> Status in
            let spoolOK = access(spool.temporaryDirectory, W_OK) == 0
            var db = "not configured"
            if let database { db = await database() ? "ok" : "unreachable" }
            guard spoolOK && db != "unreachable" else {
                throw Problem(.serviceUnavailable, "spool \(spoolOK ? "ok" : "not writable"), database \(db)")
            }
            return Status(status: "ok", spool: "ok", database: db)
        }
    }
}
