import Foundation
import Mustache

/// A value a template can show: what a subscriber's JSON `attributes` or a campaign's
/// fields hold. `Codable` as plain JSON (`"x"`, `3`, `1.5`, `true`, `[…]`, `{…}`, `null`).
///
/// How each case behaves in Mustache:
/// - `.string`, `.int`, `.double` render as text; an empty string is *falsy*, so
///   `{{#first_name}}Hi {{first_name}}{{/first_name}}{{^first_name}}Hi there{{/first_name}}`
///   does what its author means when the name is missing or empty;
/// - `.bool` opens or skips a section;
/// - `.array` repeats a section (empty: falsy); `.object` opens a section with its keys;
/// - `.null` is falsy and renders as nothing.
public enum TemplateValue: Sendable, Hashable, Codable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([TemplateValue])
    case object([String: TemplateValue])
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int.self) {
            self = .int(i)
        } else if let d = try? container.decode(Double.self) {
            self = .double(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([TemplateValue].self) {
            self = .array(a)
        } else if let o = try? container.decode([String: TemplateValue].self) {
            self = .object(o)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let s): try container.encode(s)
        case .int(let i): try container.encode(i)
        case .double(let d): try container.encode(d)
        case .bool(let b): try container.encode(b)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        case .null: try container.encodeNil()
        }
    }

    /// The object handed to swift-mustache for this value.
    var mustacheValue: Any {
        switch self {
        case .string(let s): return s.isEmpty ? MustacheEmpty.value : s
        case .int(let i): return i
        case .double(let d):
            if d.rounded() == d, abs(d) < 1e15 { return String(Int64(d)) }
            return String(d)
        case .bool(let b): return b
        case .array(let a): return a.map(\.mustacheValue)
        case .object(let o): return o.mapValues(\.mustacheValue)
        case .null: return MustacheEmpty.value
        }
    }
}

extension TemplateValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TemplateValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

/// Renders as nothing and counts as false in sections (an absent or empty value).
struct MustacheEmpty: MustacheCustomRenderable, Sendable {
    static let value = MustacheEmpty()
    var renderText: String { "" }
    var isNull: Bool { true }
}

/// What one recipient contributes to the templates.
///
/// Variables: `email`, `first_name`, `last_name`, `name`, `attributes.<key>` (any JSON
/// below), `unsubscribe_url`. `name` defaults to "first last" when not given.
public struct RecipientVariables: Sendable, Hashable {
    public var email: String
    public var firstName: String?
    public var lastName: String?
    /// The full name as stored; nil or empty: `first_name` and `last_name` joined by a space.
    public var name: String?
    public var attributes: [String: TemplateValue]
    /// The link shown by `{{unsubscribe_url}}`; nil: the List-Unsubscribe URL of the message.
    public var unsubscribeURL: String?

    public init(email: String, firstName: String? = nil, lastName: String? = nil, name: String? = nil,
                attributes: [String: TemplateValue] = [:], unsubscribeURL: String? = nil) {
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.name = name
        self.attributes = attributes
        self.unsubscribeURL = unsubscribeURL
    }

    /// `name`, or first and last name joined; nil when all are empty.
    public var displayName: String? {
        if let name, !name.isEmpty { return name }
        let joined = [firstName, lastName].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        return joined.isEmpty ? nil : joined
    }
}

enum TemplateContext {
    /// The Mustache context for one message.
    static func make(recipient: RecipientVariables, campaign: [String: TemplateValue],
                     unsubscribeURL: String?) -> [String: Any] {
        func text(_ s: String?) -> Any { (s?.isEmpty ?? true) ? MustacheEmpty.value : s! }
        return [
            "email": text(recipient.email),
            "first_name": text(recipient.firstName),
            "last_name": text(recipient.lastName),
            "name": text(recipient.displayName),
            "attributes": recipient.attributes.mapValues(\.mustacheValue),
            "unsubscribe_url": text(recipient.unsubscribeURL ?? unsubscribeURL),
            "campaign": campaign.mapValues(\.mustacheValue),
        ]
    }
}
