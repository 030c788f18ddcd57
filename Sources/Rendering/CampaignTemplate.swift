import Mustache

/// A campaign's subject, HTML and text templates, validated and compiled once, rendered
/// for every recipient.
///
/// Validation happens in `init`, i.e. when the campaign is saved: every syntax error,
/// unknown variable and unsupported tag is collected into one `TemplateValidationError`
/// whose issues name the field, the line and the variable
/// (`html line 3: unknown variable "frist_name"`), which the HTTP API returns to the client.
///
/// Escaping: `{{var}}` is HTML-escaped in the HTML template only (`{{{var}}}` and `{{&var}}`
/// insert raw HTML, at the author's risk). The subject and text templates are compiled
/// in swift-mustache's TEXT content type, so `{{var}}` is inserted as written there.
public struct CampaignTemplate: Sendable {
    /// The campaign fields templates may use as `{{campaign.<field>}}` when none are given.
    public static let defaultCampaignFields: Set<String> = ["id", "name", "subject", "from", "reply_to"]

    public let subjectSource: String
    public let htmlSource: String?
    public let textSource: String?
    public let campaignFields: Set<String>

    let subject: MustacheTemplate
    let html: MustacheTemplate?
    let text: MustacheTemplate?

    /// Compiles and validates the templates. An empty (or all-whitespace) html or text
    /// template counts as absent; at least one of them is required.
    public init(subject: String, html: String?, text: String?,
                campaignFields: Set<String> = CampaignTemplate.defaultCampaignFields) throws(TemplateValidationError) {
        let html = html.flatMap { $0.heraldTrimmed.isEmpty ? nil : $0 }
        let text = text.flatMap { $0.heraldTrimmed.isEmpty ? nil : $0 }
        var issues: [TemplateIssue] = []
        let subjectTemplate = Self.compile(subject, field: .subject, textMode: true, campaignFields: campaignFields, issues: &issues)
        let htmlTemplate = html.flatMap { Self.compile($0, field: .html, textMode: false, campaignFields: campaignFields, issues: &issues) }
        let textTemplate = text.flatMap { Self.compile($0, field: .text, textMode: true, campaignFields: campaignFields, issues: &issues) }
        if html == nil && text == nil {
            issues.append(TemplateIssue(field: .html, line: 0, kind: .missingBody))
        }
        guard issues.isEmpty, let subjectTemplate, html == nil || htmlTemplate != nil, text == nil || textTemplate != nil
        else { throw TemplateValidationError(issues: issues) }
        self.subjectSource = subject
        self.htmlSource = html
        self.textSource = text
        self.campaignFields = campaignFields
        self.subject = subjectTemplate
        self.html = htmlTemplate
        self.text = textTemplate
    }

    /// The issues `init` would throw, without throwing (empty: the templates are fine).
    public static func validate(subject: String, html: String?, text: String?,
                                campaignFields: Set<String> = defaultCampaignFields) -> [TemplateIssue] {
        do {
            _ = try CampaignTemplate(subject: subject, html: html, text: text, campaignFields: campaignFields)
            return []
        } catch {
            return error.issues
        }
    }

    /// The TEXT pragma on a line of its own: a standalone tag, so it leaves no output and
    /// does not change how the author's first line is treated; it moves line numbers by one.
    private static let textPragma = "{{%CONTENT_TYPE:TEXT}}\n"

    private static func compile(_ source: String, field: TemplateField, textMode: Bool, campaignFields: Set<String>,
                                issues: inout [TemplateIssue]) -> MustacheTemplate? {
        let found = TemplateChecker(field: field, campaignFields: campaignFields).check(source)
        issues += found
        do {
            return try MustacheTemplate(string: textMode ? textPragma + source : source)
        } catch let error as MustacheTemplate.ParserError {
            if !found.contains(where: { if case .syntax = $0.kind { true } else { false } }) {
                let line = max(1, error.context.lineNumber - (textMode ? 1 : 0))
                issues.append(TemplateIssue(field: field, line: line, kind: .syntax(Self.explain(error.error))))
            }
            return nil
        } catch {
            if found.isEmpty { issues.append(TemplateIssue(field: field, line: 0, kind: .syntax("\(error)"))) }
            return nil
        }
    }

    private static func explain(_ error: any Error) -> String {
        guard let e = error as? MustacheTemplate.Error else { return "cannot parse the template" }
        switch e {
        case .sectionCloseNameIncorrect: return "closing tag does not match the open section"
        case .unfinishedName: return "badly formed tag"
        case .expectedSectionEnd: return "a section is never closed"
        case .invalidSetDelimiter: return "bad delimiter change"
        case .transformAppliedToInheritanceSection, .illegalTokenInsideInheritSection, .textInsideInheritSection:
            return "blocks and partials are not available"
        case .invalidConfigVariableSyntax, .unrecognisedConfigVariable: return "pragmas are not available"
        }
    }

    /// True when there is an HTML template.
    public var hasHTML: Bool { html != nil }
    /// True when there is a text template (else the text part is derived from the HTML).
    public var hasText: Bool { text != nil }

    /// The three parts rendered for one recipient; `text` is derived from the HTML with
    /// `htmlToText` when there is no text template, `html` is nil when there is no HTML one.
    public func render(recipient: RecipientVariables, campaign: [String: TemplateValue] = [:],
                       unsubscribeURL: String? = nil) -> RenderedParts {
        let context = TemplateContext.make(recipient: recipient, campaign: campaign, unsubscribeURL: unsubscribeURL)
        let renderedHTML = html?.render(context)
        let renderedText = text?.render(context) ?? htmlToText(renderedHTML ?? "")
        return RenderedParts(subject: subject.render(context), html: renderedHTML, text: renderedText)
    }
}

/// One recipient's rendered templates, before MIME encoding. `subject` is as rendered
/// (it may still hold line breaks; the message renderer removes them).
public struct RenderedParts: Sendable, Hashable {
    public var subject: String
    public var html: String?
    public var text: String
}
