import Testing

@testable import Rendering

@Suite("Render: HTML to text")
struct RenderHTMLToTextTests {
    @Test("examples", arguments: [
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("a<br>b<br/>c<br />d", "a\nb\nc\nd"),
        ("a<br><br>b", "a\n\nb"),
        ("<h1>Title</h1>Text", "Title\n\nText"),
        ("<h2>A</h2><h3>B</h3>", "A\n\nB"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ("<ol><li>first<li>second</ol>after", "1. first\n2. second\n\nafter"),
        ("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>", "- a\n  - b\n- c"),
        ("<p>Read <a href=\"https://x.test/post?a=1&amp;b=2\">the post</a>, now.</p>",
         "Read the post (https://x.test/post?a=1&b=2), now."),
        ("<a href=\"https://x.test/\">https://x.test/</a>", "https://x.test/"),
        ("<a href=\"https://x.test/\">x.test</a>", "x.test"),
        ("<a href=\"mailto:hi@x.test\">hi@x.test</a>", "hi@x.test"),
        ("<a href=\"mailto:hi@x.test\">write us</a>", "write us (mailto:hi@x.test)"),
        ("<a href=\"#top\">top</a> <a href=\"javascript:void(0)\">js</a>", "top js"),
        ("<a href=\"https://x.test/i\"><img src=\"i.png\"></a>", "https://x.test/i"),
        ("<a href='https://x.test/i'><img src=i.png alt=\"Logo\"></a>", "Logo (https://x.test/i)"),
        ("Tom &amp; Jerry &lt;3 &quot;q&quot; &#39;s&#39; &eacute;t&eacute; &#x1F600; &euro;5 &copy; &nbsp;x",
         "Tom & Jerry <3 \"q\" 's' été 😀 €5 © x"),
        ("&unknown; &amp &#150; a&b", "&unknown; & – a&b"),
        ("  lots   of \n\n white\tspace  ", "lots of white space"),
        ("<html><head><title>T</title><style>p{color:red}</style></head><body><p>Body</p><script>alert(1)</script></body></html>",
         "Body"),
        ("<!DOCTYPE html><!-- hidden <p>x</p> -->shown", "shown"),
        ("<pre>line 1\n  indented\n</pre><p>after</p>", "line 1\n  indented\n\nafter"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("x<hr>y", "x\n----------------------------------------\ny"),
        ("Preheader&zwnj;&nbsp;&zwnj;&nbsp;&#8203;<p>Text</p>", "Preheader\n\nText"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("<P CLASS=x>Upper</P><BR>case", "Upper\n\ncase"),
        ("", ""),
    ])
    func example(html: String, text: String) {
        #expect(htmlToText(html) == text)
    }

    @Test("a realistic newsletter")
    func newsletter() {
        let html = """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><style>.x { color: red }</style></head>
        <body>
          <div class="preheader" style="display:none">Spring is here&nbsp;&zwnj;</div>
          <table width="100%"><tr><td>
            <h1>Hello Bob,</h1>
            <p>Our <strong>spring sale</strong> starts today.
               Save up to 30%&nbsp;on everything.</p>
            <ul>
              <li>Shoes</li>
              <li>Coats &amp; jackets</li>
            </ul>
            <p><a href="https://shop.test/sale?utm=mail">Shop now</a></p>
            <p style="font-size:small">No longer interested?
               <a href="https://herald.test/u/abc.def">Unsubscribe</a>.</p>
          </td></tr></table>
        </body></html>
        """
        #expect(htmlToText(html) == """
            Spring is here

            Hello Bob,

            Our spring sale starts today. Save up to 30% on everything.

            - Shoes
            - Coats & jackets

            Shop now (https://shop.test/sale?utm=mail)

            No longer interested? Unsubscribe (https://herald.test/u/abc.def).
            """)
    }

    @Test("random markup never crashes and never leaves trailing spaces or 3 line breaks")
    func randomMarkup() {
        let pieces = ["<", ">", "</", "/>", "<p>", "</p>", "<a href=\"", "\">", "</a>", "<li>", "<ul>", "</ul>", "<ol>", "<br>",
                      "<pre>", "</pre>", "<script>", "</script>", "<!--", "-->", "&", "&amp;", "&#", "&#x", "x", " ", "\n",
                      "\"", "'", "=", "é", "😀", "<img alt='a'>", "<td>", "<tr>", "<hr>", "&nbsp;", ";"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let html = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            let text = htmlToText(html)
            #expect(!text.contains("\n\n\n"))
            #expect(!text.hasPrefix("\n") && !text.hasSuffix("\n"))
            for line in text.split(separator: "\n") { #expect(line.last != " " && line.last != "\t", "\(html)") }
        }
    }

    @Test("no line ends in a space and there are never two blank lines in a row")
    func tidy() {
        let text = htmlToText("<p>a </p> <p> </p><p></p><br><br><br><div> b <br> </div>")
        #expect(text == "a\n\nb")
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) { #expect(line.last != " ") }
    }
}
