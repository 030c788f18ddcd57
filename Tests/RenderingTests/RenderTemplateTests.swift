import Testing

@testable import Rendering

@Suite("Render: templates")
struct RenderTemplateTests {
    let bob = RecipientVariables(email: "bob@example.test", firstName: "Bob", lastName: "Smith",
                                 attributes: ["plan": "pro", "city": "Zürich", "orders": [["id": 1], ["id": 2]],
                                              "vip": true, "count": 3])

    func issues(subject: String = "Hi", html: String? = nil, text: String? = nil,
                fields: Set<String> = CampaignTemplate.defaultCampaignFields) -> [TemplateIssue] {
        CampaignTemplate.validate(subject: subject, html: html, text: text, campaignFields: fields)
    }

    @Test("an unknown variable is reported with field, line and name")
    func unknownVariable() throws {
        let html = "<html>\n<body>\n<p>Hello {{frist_name}}</p>\n</body></html>"
        let found = issues(html: html)
        #expect(found.count == 1)
        #expect(found.first?.description == #"html line 3: unknown variable "frist_name""#)
        #expect(found.first?.field == .html)
        #expect(found.first?.line == 3)
        #expect(found.first?.variable == "frist_name")
        #expect(found.first?.suggestion == "first_name")
        #expect(found.first?.message == #"html line 3: unknown variable "frist_name" (did you mean "first_name"?)"#)

        do {
            _ = try CampaignTemplate(subject: "Hi", html: html, text: nil)
            Issue.record("expected a validation error")
        } catch {
            #expect(error.issues.map(\.description) == [#"html line 3: unknown variable "frist_name""#])
        }
    }

    @Test("every issue of every field is collected, in order")
    func manyIssues() {
        let found = issues(subject: "{{campaign.nmae}} for {{email}}",
                           html: "<p>{{first_name}}</p>\n{{#attributes}}{{anything.goes}}{{/attributes}}\n{{plan}}",
                           text: "line 1\nline 2 {{unsubscribe_url}}\n\n{{> footer}}")
        #expect(found.map(\.description) == [
            #"subject line 1: unknown variable "campaign.nmae""#,
            #"html line 3: unknown variable "plan""#,
            #"text line 4: unsupported tag "{{> footer}}" (partials, blocks and pragmas are not available)"#,
        ])
        #expect(found[0].suggestion == "campaign.name")
        #expect(found[1].suggestion == "attributes.plan")
    }

    @Test("known variables, attributes, campaign fields, sections and inverted sections validate")
    func knownVariables() {
        let html = """
        {{email}} {{first_name}} {{last_name}} {{name}} {{unsubscribe_url}}
        {{attributes.plan}} {{attributes.deep.nested.key}} {{{attributes.html_snippet}}} {{&attributes.raw}}
        {{campaign.name}} {{campaign.id}} {{campaign.subject}}
        {{#first_name}}Hi {{first_name}}{{/first_name}}{{^first_name}}Hi there{{/first_name}}
        {{#attributes.orders}}<li>{{id}} {{.}} {{email}}</li>{{/attributes.orders}}
        {{#attributes}}{{plan}}{{/attributes}}
        {{#campaign}}{{name}} {{id}}{{/campaign}}
        {{^attributes.vip}}not vip{{/attributes.vip}}
        {{! a comment {{frist_name}} is not a variable }}
        {{uppercased(first_name)}} {{#empty(attributes.orders)}}none{{/empty(attributes.orders)}}
        {{=<% %>=}}<% first_name %> {{not a tag}}<%={{ }}=%>{{last_name}}
        """
        #expect(issues(subject: "{{campaign.subject}} – {{first_name}}", html: html, text: "{{name}}").isEmpty)
    }

    @Test("campaign fields are the set passed in")
    func campaignFields() {
        #expect(issues(subject: "{{campaign.sender_team}}", html: "x").map(\.variable) == ["campaign.sender_team"])
        #expect(issues(subject: "{{campaign.sender_team}}", html: "x", fields: ["sender_team"]).isEmpty)
        #expect(issues(subject: "{{campaign.name}}", html: "x", fields: ["sender_team"]).map(\.variable) == ["campaign.name"])
    }

    @Test("groups used as values, bad transforms, stray dots are errors")
    func misuse() {
        let found = issues(html: "{{campaign}}\n{{attributes}}\n{{shout(first_name)}}\n{{.}}\n{{email.domain}}")
        #expect(found.map(\.description) == [
            #"html line 1: "campaign" is a group of values, not a value (use campaign.<key>)"#,
            #"html line 2: "attributes" is a group of values, not a value (use attributes.<key>)"#,
            #"html line 3: unknown transform "shout""#,
            #"html line 4: unknown variable ".""#,
            #"html line 5: unknown variable "email.domain""#,
        ])
    }

    @Test("syntax errors name field and line", arguments: [
        ("{{#first_name}}\nHi\n", #"html line 1: section "{{#first_name}}" opened on line 1 is never closed"#),
        ("a\n{{#first_name}}x{{/last_name}}", #"html line 2: "{{/last_name}}" does not close "{{#first_name}}" opened on line 2"#),
        ("a\nb\n{{/first_name}}", #"html line 3: "{{/first_name}}" closes a section that was never opened"#),
        ("a\nb {{first_name", #"html line 2: unclosed tag"#),
        ("a\n{{first name}}", #"html line 2: invalid tag "{{first name}}""#),
        ("x {{}}", #"html line 1: empty tag "{{}}""#),
        ("\n\n{{! never closed", #"html line 3: unclosed comment"#),
        ("{{%CONTENT_TYPE:HTML}}", #"html line 1: unsupported tag "{{%CONTENT_TYPE:HTML}}" (partials, blocks and pragmas are not available)"#),
    ])
    func syntax(html: String, expected: String) {
        #expect(issues(html: html).map(\.description) == [expected])
    }

    @Test("a syntax error only swift-mustache sees is still reported with its line")
    func libraryOnlySyntaxError() {
        // With changed delimiters swift-mustache wants `<%{name%>}`; the scanner accepts
        // `<%{name}%>`. The library's error (line 3 of the text, after the TEXT pragma) counts.
        let found = issues(text: "ok\n{{=<% %>=}}\n<%{first_name}%>")
        #expect(found.count == 1)
        #expect(found.first?.field == .text)
        #expect(found.first?.line == 3)
        if case .syntax = found.first?.kind {} else { Issue.record("expected a syntax issue, got \(found)") }
    }

    @Test("random template text never crashes the checker and parses iff it has no issue")
    func randomTemplates() {
        let pieces = ["{{", "}}", "{{{", "}}}", "{{#", "{{/", "{{^", "{{!", "{{=", "=}}", "{{&", "{{>", "first_name", "email",
                      "attributes.x", "campaign.name", "nope", "<%", "%>", " ", "\n", "x", ".", "(", ")", "é"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let source = (0..<Int.random(in: 0..<20, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            let found = issues(html: source.isEmpty ? "x" : source)
            for issue in found { #expect(issue.line >= 0) }
            if found.isEmpty {
                // What the checker accepts, swift-mustache compiles and renders.
                #expect(throws: Never.self) {
                    _ = try CampaignTemplate(subject: "s", html: source.isEmpty ? "x" : source, text: nil)
                        .render(recipient: RecipientVariables(email: "a@b.test"))
                }
            }
        }
    }

    @Test("a body is required")
    func missingBody() {
        #expect(issues(html: nil, text: nil).map(\.kind) == [.missingBody])
        #expect(issues(html: "  \n", text: "").map(\.kind) == [.missingBody])
        #expect(issues(html: nil, text: "t").isEmpty)
    }

    @Test("html escapes {{var}}; subject and text do not; triple mustache is raw")
    func escaping() throws {
        let r = RecipientVariables(email: "a@b.test", firstName: "Tom & \"Jerry\" <3 'x'",
                                   attributes: ["snippet": "<b>bold</b>"])
        let t = try CampaignTemplate(subject: "Hi {{first_name}}",
                                     html: "<p>{{first_name}}</p>{{{attributes.snippet}}}{{attributes.snippet}}",
                                     text: "Hi {{first_name}} {{attributes.snippet}}")
        let parts = t.render(recipient: r)
        #expect(parts.subject == "Hi Tom & \"Jerry\" <3 'x'")
        #expect(parts.text == "Hi Tom & \"Jerry\" <3 'x' <b>bold</b>")
        #expect(parts.html == "<p>Tom &amp; &quot;Jerry&quot; &lt;3 &#39;x&#39;</p><b>bold</b>&lt;b&gt;bold&lt;/b&gt;")
    }

    @Test("rendering: variables, attributes, campaign, sections, empty and missing values")
    func rendering() throws {
        let t = try CampaignTemplate(
            subject: "{{campaign.name}}: {{#first_name}}{{first_name}}{{/first_name}}{{^first_name}}friend{{/first_name}}",
            html: nil,
            text: """
            {{name}} <{{email}}> plan={{attributes.plan}} city={{attributes.city}} n={{attributes.count}}
            {{#attributes.vip}}VIP{{/attributes.vip}}{{^attributes.missing}} no-missing{{/attributes.missing}}
            {{#attributes.orders}}[{{id}}]{{/attributes.orders}}
            {{#campaign}}{{id}}{{/campaign}} {{unsubscribe_url}}
            """)
        let parts = t.render(recipient: bob, campaign: ["name": "Spring", "id": "c1"], unsubscribeURL: "https://u.test/x")
        #expect(parts.subject == "Spring: Bob")
        #expect(parts.text == """
            Bob Smith <bob@example.test> plan=pro city=Zürich n=3
            VIP no-missing
            [1][2]
            c1 https://u.test/x
            """)
        #expect(parts.html == nil)

        let anonymous = RecipientVariables(email: "x@example.test", firstName: "", attributes: ["vip": false])
        let p2 = t.render(recipient: anonymous, campaign: ["name": "Spring"])
        #expect(p2.subject == "Spring: friend")
        #expect(p2.text.hasPrefix(" <x@example.test> plan= city= n=\n no-missing\n"))
    }

    @Test("the first line of a text template behaves as without the TEXT pragma")
    func standaloneFirstLine() throws {
        let t = try CampaignTemplate(subject: "s", html: nil, text: "{{#first_name}}\nHi {{first_name}}\n{{/first_name}}\nBye")
        #expect(t.render(recipient: bob).text == "Hi Bob\nBye")
        let missing = t.render(recipient: RecipientVariables(email: "a@b.test"))
        #expect(missing.text == "Bye")
    }

    @Test("text is derived from the HTML when there is no text template")
    func derivedText() throws {
        let t = try CampaignTemplate(subject: "s", html: "<h1>Hi {{first_name}}</h1><p>See <a href=\"{{unsubscribe_url}}\">here</a>.</p>", text: nil)
        let parts = t.render(recipient: bob, unsubscribeURL: "https://u.test/t")
        #expect(parts.text == "Hi Bob\n\nSee here (https://u.test/t).")
        #expect(t.hasHTML && !t.hasText)
    }

    @Test("TemplateValue decodes JSON attributes")
    func jsonValues() throws {
        let json = #"{"s":"x","i":3,"d":1.5,"b":true,"a":[1,"two"],"o":{"k":null}}"#
        let decoded = try JSONDecoder().decode([String: TemplateValue].self, from: Data(json.utf8))
        #expect(decoded == ["s": "x", "i": 3, "d": 1.5, "b": true, "a": [1, "two"], "o": ["k": .null]])
        let t = try CampaignTemplate(subject: "{{attributes.i}} {{attributes.d}} {{attributes.o.k}}|", html: nil, text: "x")
        #expect(t.render(recipient: RecipientVariables(email: "a@b.test", attributes: decoded)).subject == "3 1.5 |")
    }
}

import Foundation
