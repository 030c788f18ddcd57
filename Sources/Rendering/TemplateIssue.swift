/// Which template of a campaign a problem is in.
public enum TemplateField: String, Sendable, Hashable, Codable, CaseIterable {
    case subject, html, text
}

/// One problem found when a campaign's templates are saved. `description` is the
/// message a person reads, e.g. `html line 3: unknown variable "frist_name"`.
public struct TemplateIssue: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The template does not parse (`detail` says why).
        case syntax(String)
        /// `{{name}}` (or a section) names no variable Herald provides.
        case unknownVariable(String)
        /// `{{campaign}}` / `{{attributes}}` used as a value: they are groups of values.
        case notAValue(String)
        /// A tag Herald does not support in campaign templates (partials, blocks, pragmas).
        case unsupportedTag(String)
        /// `{{transform(name)}}` with a transform swift-mustache does not have.
        case unknownTransform(String)
        /// Neither an HTML nor a text template was given.
        case missingBody
    }

    public var field: TemplateField
    /// 1-based line of the tag (0 when the issue is about the whole template).
    public var line: Int
    public var kind: Kind
    /// A known variable close to an unknown one, for a "did you mean" hint.
    public var suggestion: String?

    public init(field: TemplateField, line: Int, kind: Kind, suggestion: String? = nil) {
        self.field = field
        self.line = line
        self.kind = kind
        self.suggestion = suggestion
    }

    /// The variable (or tag) the issue is about, if any.
    public var variable: String? {
        switch kind {
        case .unknownVariable(let v), .notAValue(let v), .unsupportedTag(let v), .unknownTransform(let v): return v
        case .syntax, .missingBody: return nil
        }
    }

    public var description: String {
        let place = line > 0 ? "\(field.rawValue) line \(line)" : field.rawValue
        switch kind {
        case .syntax(let detail): return "\(place): \(detail)"
        case .unknownVariable(let v): return "\(place): unknown variable \"\(v)\""
        case .notAValue(let v): return "\(place): \"\(v)\" is a group of values, not a value (use \(v).<key>)"
        case .unsupportedTag(let v): return "\(place): unsupported tag \"\(v)\" (partials, blocks and pragmas are not available)"
        case .unknownTransform(let v): return "\(place): unknown transform \"\(v)\""
        case .missingBody: return "\(place): a campaign needs an html or a text template"
        }
    }

    /// The description with the hint, e.g. `… unknown variable "frist_name" (did you mean "first_name"?)`.
    public var message: String {
        guard let suggestion else { return description }
        return description + " (did you mean \"\(suggestion)\"?)"
    }
}

/// Thrown when templates do not validate: every issue found, in field and line order.
public struct TemplateValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var issues: [TemplateIssue]
    public init(issues: [TemplateIssue]) { self.issues = issues }
    public var description: String { issues.map(\.message).joined(separator: "; ") }
}
