import CampaignStore
import Foundation
import Hummingbird

/// What the SMTP user routes need from this node's SMTP side (the `Herald` module's
/// `SMTPUserDirectory`): the password hash format, the config's users, and a way to
/// make a change hold at once on this node.
public protocol SMTPUserAccounts: Sendable {
    /// The hash stored for `password` (the `[[user]] password_hash` format).
    func passwordHash(for password: String) -> String
    /// Whether the config's `[[user]]` tables name this user, ignoring case: such a
    /// config user would always win over a database user of that name.
    func isConfigUser(_ username: String) -> Bool
    /// The user was deleted or given a new password: forget what was read about it.
    func changed(_ username: String)
}

/// A tenant's SMTP AUTH users (issue #14, item 4): its applications submit over SMTP
/// with them, and their mail is tagged with the tenant, so its quota, limits and
/// webhook events hold as for its API mail.
/// - `POST /v1/smtp-users {"username"}` → 201 with the user and its `password`, made by
///   the server and shown only here (the database keeps a salted hash);
/// - `GET /v1/smtp-users?after=&limit=` → `{"data": [...], "next"}`; `GET /v1/smtp-users/{id}`;
/// - `POST /v1/smtp-users/{id}/reset-password` → the user with a new `password` (the
///   old one stops working);
/// - `DELETE /v1/smtp-users/{id}` → 204: the user cannot authenticate any more (on this
///   node at once, on the others within seconds).
///
/// A user is `{"id", "username", "created_at", "password_changed_at", "last_used_at"}`.
/// A user name is unique on the server, ignoring case (AUTH names only the user): one
/// taken by any tenant or by the config's `[[user]]` tables is a 409; a malformed one a
/// 400. Another tenant's user is a 404, like one that does not exist.
public struct SMTPUsersV1: Sendable {
    public static let maxPageSize = 1000

    struct UserJSON: Encodable, ResponseEncodable {
        var user: SMTPUser
        /// Only in the answers that make a password.
        var password: String?

        enum CodingKeys: String, CodingKey {
            case id, username, created_at, password_changed_at, last_used_at, password
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(user.id, forKey: .id)
            try c.encode(user.username, forKey: .username)
            try c.encode(user.createdAt, forKey: .created_at)
            try c.encode(user.passwordChangedAt, forKey: .password_changed_at)
            try c.encode(user.lastUsedAt, forKey: .last_used_at)
            try c.encodeIfPresent(password, forKey: .password)
        }
    }

    struct CreateBody: Decodable {
        var username: String
    }

    let store: SMTPUserStore
    let accounts: any SMTPUserAccounts

    public init(store: SMTPUserStore, accounts: any SMTPUserAccounts) {
        self.store = store
        self.accounts = accounts
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let store = self.store
        let accounts = self.accounts
        group.post("smtp-users") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let body = try await APIInput.decode(CreateBody.self, from: request)
            let username: String
            do {
                username = try SMTPUserStore.validateUsername(body.username)
            } catch let error as StoreError {
                throw Problem.badRequest(error.message)
            }
            if accounts.isConfigUser(username) { throw Problem(SMTPUserStore.taken(username)) }
            let password = SMTPUserStore.generatePassword()
            let user = try await APIInput.store {
                try await store.create(tenant: tenant, username: username,
                                       passwordHash: accounts.passwordHash(for: password))
            }
            // A failed AUTH of this name a moment ago may still be remembered.
            accounts.changed(user.username)
            return try APIInput.created(UserJSON(user: user, password: password),
                                        location: "/v1/smtp-users/\(user.id)", request: request, context: context)
        }
        group.get("smtp-users") { request, context -> Response in
            let tenant = try context.databaseTenant()
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: { (u: SMTPUser) in u.id },
                                           item: { UserJSON(user: $0) }) { after, limit in
                try await store.users(tenant: tenant, after: after, limit: limit)
            }.response(from: request, context: context)
        }
        group.get("smtp-users/:id") { _, context -> UserJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "SMTP user")
            guard let user = try await store.user(tenant: tenant, id: id) else { throw Problem.notFound("SMTP user \(id)") }
            return UserJSON(user: user)
        }
        group.post("smtp-users/:id/reset-password") { _, context -> UserJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "SMTP user")
            let password = SMTPUserStore.generatePassword()
            guard let user = try await store.setPassword(tenant: tenant, id: id,
                                                         passwordHash: accounts.passwordHash(for: password))
            else { throw Problem.notFound("SMTP user \(id)") }
            accounts.changed(user.username)
            return UserJSON(user: user, password: password)
        }
        group.delete("smtp-users/:id") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "SMTP user")
            guard let username = try await store.delete(tenant: tenant, id: id) else {
                throw Problem.notFound("SMTP user \(id)")
            }
            accounts.changed(username)
            return .noContent
        }
    }
}
