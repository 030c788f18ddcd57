import Foundation
import HeraldTestSupport
import Testing

/// `POST /v1/messages` against the running binary (no database): personalized messages
/// are rendered, committed, delivered to a sink, and parse back as valid MIME.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct HTTPMessagesEndToEnd {
        static let key = "hk_end-to-end-test-key"

        static func sha256(_ s: String) async throws -> String {
            let r = try await Command.run("/usr/bin/env", ["python3", "-c",
                "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())", s])
            return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        @Test("three personalized messages over HTTP arrive at the sink as valid MIME")
        func messagesArrive() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            var options = DeliveryIT.options(toml: [DeliveryIT.route("*.http.test", port: sink.port)])
            options.http = true
            options.apiKeys = [(tenant: "acme", sha256: try await Self.sha256(Self.key))]
            try await HeraldProcess.with(options) { herald in
                let port = try await herald.httpPort()
                let script = """
                import json, sys, urllib.request, urllib.error
                body = {"from": "Acmé News <news@http.test>", "subject": "Bonjour {{first_name}} ✓",
                        "html": "<p>Hello <b>{{first_name}}</b>, plan {{attributes.plan}}.</p>",
                        "recipients": [{"email": "r%d@d%d.http.test" % (i, i), "first_name": "Zoë%d" % i,
                                        "attributes": {"plan": "p%d" % i}} for i in range(3)]}
                def post(key, payload):
                    req = urllib.request.Request("http://127.0.0.1:%s/v1/messages" % sys.argv[1],
                        data=json.dumps(payload).encode(), method="POST",
                        headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
                    try:
                        with urllib.request.urlopen(req, timeout=10) as r:
                            return r.status, r.headers.get("Content-Type"), json.load(r)
                    except urllib.error.HTTPError as e:
                        return e.code, e.headers.get("Content-Type"), json.load(e)
                print(json.dumps([post(sys.argv[2], body), post("hk_wrong", body)]))
                """
                let r = try await Command.run("/usr/bin/env", ["python3", "-c", script, String(port), Self.key], timeout: 30)
                let out = try #require(JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [[Any]], "\(r)")
                #expect(out[0][0] as? Int == 202)
                #expect((out[0][2] as? [String: Any])?["accepted"] as? Int == 3)
                #expect(out[1][0] as? Int == 401)
                #expect(out[1][1] as? String == "application/problem+json")
                #expect(await sink.waitForMessages(3, timeout: 20) == 3)
                // Parse each message back with Python's email package.
                let check = """
                import email, email.policy, glob, json, sys
                out = []
                for path in sorted(glob.glob(sys.argv[1] + "/*.eml")):
                    raw = open(path, "rb").read()
                    assert b"\\n" not in raw.replace(b"\\r\\n", b""), "bare LF"
                    m = email.message_from_bytes(raw, policy=email.policy.default)
                    html = m.get_body(("html",)).get_content()
                    text = m.get_body(("plain",)).get_content()
                    out.append({"to": str(m["To"]), "subject": str(m["Subject"]), "from": str(m["From"]),
                                "type": m.get_content_type(), "html": html, "text": text})
                print(json.dumps(out))
                """
                let c = try await Command.run("/usr/bin/env", ["python3", "-c", check, sink.outDirectory], timeout: 30)
                let parsed = try #require(JSONSerialization.jsonObject(with: Data(c.stdoutText.utf8)) as? [[String: String]],
                                          "\(c)")
                #expect(parsed.count == 3)
                for m in parsed {
                    let i = m["to"].flatMap { $0.first(where: \.isNumber) }.map(String.init) ?? "?"
                    #expect(m["type"] == "multipart/alternative")
                    #expect(m["subject"] == "Bonjour Zoë\(i) ✓")
                    #expect(m["from"]?.contains("Acmé News") == true)
                    #expect(m["html"]?.contains("<b>Zoë\(i)</b>, plan p\(i).") == true)
                    #expect(m["text"]?.contains("Zoë\(i)") == true, "text part derived from the HTML")
                }
            }
        }

        /// `smtp.max_message_size` and `http.max_body_size` from the config reach the route.
        @Test("the message size and body limits of the config apply to POST /v1/messages (413, nothing queued)")
        func limitsFromTheConfig() async throws {
            var options = DeliveryIT.options(enabled: false)
            options.http = true
            options.maxMessageSize = 20_000
            options.extraHTTP = ["max_body_size = 100000"]
            options.apiKeys = [(tenant: "acme", sha256: try await Self.sha256(Self.key))]
            try await HeraldProcess.with(options) { herald in
                let port = try await herald.httpPort()
                let script = """
                import json, sys, urllib.request, urllib.error
                def post(payload, ctype="application/json"):
                    req = urllib.request.Request("http://127.0.0.1:%s/v1/messages" % sys.argv[1],
                        data=json.dumps(payload).encode(), method="POST",
                        headers={"Content-Type": ctype, "Authorization": "Bearer " + sys.argv[2]})
                    try:
                        with urllib.request.urlopen(req, timeout=10) as r:
                            return r.status, json.load(r).get("detail", "")
                    except urllib.error.HTTPError as e:
                        return e.code, json.load(e).get("detail", "")
                one = [{"email": "a@x.http.test"}]
                print(json.dumps([
                    post({"from": "n@http.test", "subject": "s", "text": "x" * 30000, "recipients": one}),
                    post({"from": "n@http.test", "subject": "s", "text": "t", "recipients": one * 0 +
                          [{"email": "r%d@x.http.test" % i} for i in range(5000)]}),
                    post({"from": "n@http.test", "subject": "s", "text": "t", "recipients": one}, "text/plain"),
                    post({"from": "n@http.test", "subject": "s", "text": "t", "recipients": one}),
                ]))
                """
                let r = try await Command.run("/usr/bin/env", ["python3", "-c", script, String(port), Self.key], timeout: 30)
                let out = try #require(JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [[Any]], "\(r)")
                #expect(out.map { $0[0] as? Int } == [413, 413, 415, 202], "\(out)")
                #expect((out[0][1] as? String)?.contains("at most 20000 bytes") == true, "\(out[0])")
                #expect((out[1][1] as? String)?.contains("larger than 100000 bytes") == true, "\(out[1])")
                #expect(try await herald.queueList().count == 1)
            }
        }
    }
}
