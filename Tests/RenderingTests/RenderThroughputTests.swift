import Foundation
import Testing

@testable import Rendering

@Suite("Render: throughput")
struct RenderThroughputTests {
    static let html = """
    <!DOCTYPE html>
    <html><head><meta charset="utf-8"><title>{{campaign.subject}}</title>
    <style>body { font-family: sans-serif } .btn { background: #06c; color: #fff }</style></head>
    <body>
    <div style="display:none">Our spring sale starts today&nbsp;&zwnj;</div>
    <table width="100%" cellpadding="0" cellspacing="0"><tr><td>
      <h1>Hello {{#first_name}}{{first_name}}{{/first_name}}{{^first_name}}there{{/first_name}},</h1>
      <p>Thanks for being a <strong>{{attributes.plan}}</strong> customer since {{attributes.since}}.
         This spring, everything in the shop is up to 30% off — including the things you looked at
         last time: {{#attributes.interests}}{{.}}, {{/attributes.interests}}and more.</p>
      <ul>
        <li>Free shipping on orders over 50 €</li>
        <li>Returns within 60 days</li>
        <li>Gift wrapping on request</li>
      </ul>
      <p><a class="btn" href="https://shop.example.test/sale?utm_source=herald&amp;utm_campaign={{campaign.id}}">Shop the sale</a></p>
      <p style="font-size:12px;color:#888">You receive this e-mail because {{email}} subscribed to our newsletter.
         <a href="{{unsubscribe_url}}">Unsubscribe</a> at any time.</p>
    </td></tr></table>
    </body></html>
    """

    @Test("render 10,000 messages and print the rate")
    func throughput() async throws {
        let template = try CampaignTemplate(subject: "{{#first_name}}{{first_name}}, {{/first_name}}the spring sale is on – up to 30% off",
                                            html: Self.html, text: nil)
        let renderer = try MessageRenderer(
            template: template, campaign: ["id": "c-42", "name": "Spring", "subject": "Spring sale"],
            from: try MailAddress("news@shop.example.test", name: "Example Shop"),
            replyTo: try MailAddress("support@shop.example.test"), messageIDDomain: "shop.example.test",
            extraHeaders: [ExtraHeader("X-Herald-Campaign", "c-42")])
        let key = Array("0123456789abcdef0123456789abcdef".utf8)
        let names = ["Anna", "Björn", "Chloé", "", "Dmitri", "Eve", "Fatima", "Günther", "Hiroshi", "Ines"]
        let count = 10_000
        var total = 0
        var sample: [[UInt8]] = []
        let clock = ContinuousClock()
        let start = clock.now
        for n in 0..<count {
            let token = UnsubscribeToken.make(subscriber: String(n), list: "17", campaign: "42", tenant: "3", key: key)
            let r = RecipientVariables(email: "user\(n)@example.test", firstName: names[n % names.count], lastName: "Tester",
                                       attributes: ["plan": n % 3 == 0 ? "pro" : "basic", "since": .int(2015 + n % 10),
                                                    "interests": ["shoes", "coats"]])
            let m = try renderer.render(recipient: r, listUnsubscribe: ListUnsubscribe(
                url: "https://shop.example.test/u/\(token)", mailto: "mailto:unsubscribe+\(token)@shop.example.test"))
            total += m.bytes.count
            if n % 500 == 0 { sample.append(m.bytes) }
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("render throughput: \(count) messages in \(String(format: "%.2f", seconds)) s = "
            + "\(Int(Double(count) / seconds)) messages/s, average \(total / count) bytes")

        for m in sample { #expect(MessageLines.problems(m) == []) }
        let parsed = try await RenderPython.parse(sample)
        for p in parsed {
            #expect(p.defects == [])
            #expect(p.parts.map(\.type) == ["text/plain", "text/html"])
            #expect(p.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click")
        }
    }
}
