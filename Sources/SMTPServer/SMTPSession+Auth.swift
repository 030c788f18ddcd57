import SMTPCore
import Foundation

/// AUTH PLAIN and LOGIN (RFC 4954, RFC 4616).
extension SMTPSession {
    mutating func auth(_ mechanism: String, _ initial: String?) -> [SMTPSessionAction] {
        guard configuration.authAvailable else {
            return [error(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "AUTH is not offered here"))]
        }
        guard isTLS || configuration.allowPlaintextAuth else {
            return [error(SMTPReply(538, EnhancedStatusCode(5, 7, 11),
                                    "Encryption required for requested authentication mechanism"))]
        }
        guard authenticatedUser == nil else {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: already authenticated"))]
        }
        guard helo != nil, !inTransaction else {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send EHLO first, outside a transaction"))]
        }
        switch mechanism {
        case "PLAIN":
            guard let initial else {
                state = .authenticating(.plainResponse)
                return [.reply(SMTPReply(334, nil, ""))]
            }
            return authResponse(.plainResponse, Array(initial.utf8))
        case "LOGIN":
            guard let initial else {
                state = .authenticating(.loginUsername)
                return [.reply(SMTPReply(334, nil, "VXNlcm5hbWU6"))]
            }
            return authResponse(.loginUsername, Array(initial.utf8))
        default:
            return [error(SMTPReply(504, EnhancedStatusCode(5, 5, 4), "Unrecognized authentication type"))]
        }
    }

    mutating func authResponse(_ step: AuthStep, _ line: [UInt8]) -> [SMTPSessionAction] {
        state = .ready
        if line == [UInt8(ascii: "*")] {
            return [error(SMTPReply(501, EnhancedStatusCode(5, 0, 0), "Authentication canceled"))]
        }
        let text = String(decoding: line, as: UTF8.self)
        // "=" is an empty initial response (RFC 4954 §4).
        let decoded: [UInt8]? = text == "=" ? [] : Data(base64Encoded: text).map { Array($0) }
        guard let decoded else {
            return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Cannot decode response"))]
        }
        switch step {
        case .plainResponse:
            let parts = decoded.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3,
                  let authz = String(validating: parts[0], as: UTF8.self),
                  let user = String(validating: parts[1], as: UTF8.self),
                  let password = String(validating: parts[2], as: UTF8.self),
                  !user.isEmpty, authz.isEmpty || authz == user
            else {
                return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Malformed PLAIN response"))]
            }
            state = .awaitingAuthentication
            return [.verifyCredentials(username: user, password: password)]
        case .loginUsername:
            guard let user = String(validating: decoded, as: UTF8.self), !user.isEmpty else {
                return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Malformed LOGIN username"))]
            }
            state = .authenticating(.loginPassword(username: user))
            return [.reply(SMTPReply(334, nil, "UGFzc3dvcmQ6"))]
        case .loginPassword(let user):
            guard let password = String(validating: decoded, as: UTF8.self) else {
                return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Malformed LOGIN password"))]
            }
            state = .awaitingAuthentication
            return [.verifyCredentials(username: user, password: password)]
        }
    }
}
