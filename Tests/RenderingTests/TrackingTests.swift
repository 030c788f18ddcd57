import Foundation
import Rendering
import Testing

@Suite("Tracking: tokens and link rewriting")
struct TrackingTests {
    static let key = Array("0123456789abcdef0123456789abcdef".utf8)

    @Test("a token verifies as itself, for its kind and key only; any changed character fails")
    func tokens() {
        let click = TrackingToken(kind: .click, tenant: "7", campaign: 12, subscriber: 3456,
                                  url: "https://shop.example/sale?a=1&b=2#x")
        let text = click.make(key: Self.key)
        #expect(TrackingToken.verify(text, kind: .click, keys: [Self.key]) == click)
        #expect(TrackingToken.verify(text, kind: .open, keys: [Self.key]) == nil)
        #expect(TrackingToken.verify(text, kind: .click, keys: [Array("another key, sixteen+".utf8)]) == nil)
        #expect(TrackingToken.verify(text, kind: .click, keys: [Array("another key, sixteen+".utf8), Self.key]) == click)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
        let chars = Array(text)
        for i in chars.indices {
            var changed = chars
            changed[i] = alphabet.first { $0 != chars[i] }!
            #expect(TrackingToken.verify(String(changed), kind: .click, keys: [Self.key]) == nil, "position \(i)")
        }
        #expect(TrackingToken.verify(text + "A", kind: .click, keys: [Self.key]) == nil)
        #expect(TrackingToken.verify("", kind: .click, keys: [Self.key]) == nil)
        let open = TrackingToken(kind: .open, tenant: "7", campaign: 12, subscriber: 3456)
        #expect(TrackingToken.verify(open.make(key: Self.key), kind: .open, keys: [Self.key]) == open)
    }

    @Test("http(s) links become tracked, others stay; the target is the decoded URL; the rest is kept")
    func rewriting() {
        let html = """
            <html><body><a href="https://a.example/x?p=1&amp;q=2">A</a> <A Title="t" HREF='http://b.example/'>B</A>
            <a href="mailto:m@x.example">M</a><a href="#top">T</a><a href="/relative">R</a><abbr title="a">x</abbr>
            <a href=https://c.example/unquoted>C</a><a name="n">N</a><a href="https://skip.example/u/1">U</a>
            </BODY></html>
            """
        var seen: [String] = []
        let out = LinkTracking.apply(html: html, click: { target in
            seen.append(target)
            return target.contains("skip.example") ? nil : "https://t.example/c/\(seen.count)?a=1&b=\"2\""
        }, openImage: nil)
        #expect(seen == ["https://a.example/x?p=1&q=2", "http://b.example/", "https://c.example/unquoted",
                         "https://skip.example/u/1"])
        #expect(out.contains(#"<a href="https://t.example/c/1?a=1&amp;b=&quot;2&quot;">A</a>"#), "\(out)")
        #expect(out.contains(#"<A Title="t" HREF='https://t.example/c/2?a=1&amp;b=&quot;2&quot;'>B</A>"#), "\(out)")
        #expect(out.contains(#"<a href=https://t.example/c/3?a=1&amp;b=&quot;2&quot;>C</a>"#), "\(out)")
        for kept in [#"<a href="mailto:m@x.example">M</a>"#, ##"<a href="#top">T</a>"##, #"<a href="/relative">R</a>"#,
                     #"<abbr title="a">x</abbr>"#, #"<a name="n">N</a>"#, #"<a href="https://skip.example/u/1">U</a>"#] {
            #expect(out.contains(kept), "\(kept)")
        }
    }

    @Test("the open image goes before </body>, or at the end without one")
    func openImage() {
        let image = "https://t.example/o/tok"
        let withBody = LinkTracking.apply(html: "<body><p>x</p></BODY>\n</html>", click: nil, openImage: image)
        #expect(withBody.hasPrefix(#"<body><p>x</p><img src="https://t.example/o/tok" width="1" height="1""#))
        #expect(withBody.hasSuffix("</BODY>\n</html>"))
        let bare = LinkTracking.apply(html: "<p>x</p>", click: nil, openImage: image)
        #expect(bare.hasPrefix("<p>x</p><img src="))
        #expect(LinkTracking.apply(html: "<p>x</p>", click: nil, openImage: nil) == "<p>x</p>")
    }
}
