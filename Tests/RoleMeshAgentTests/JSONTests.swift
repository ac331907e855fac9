import Testing
import RoleMeshAgent

/// The control socket's JSON: what the agent writes, the CLI must read back unchanged.
@Suite struct JSONTests {
    @Test func roundTripKeepsKeyOrderAndNulls() {
        let doc = JSON.object([("self", .string("desk")), ("battery", .null), ("score", .double(0.82)),
                               ("n", .int(-3)), ("ok", .bool(true)), ("list", .array([.string("a\"b\\c\n"), .int(1)]))])
        let text = doc.serialized
        #expect(text == #"{"self": "desk", "battery": null, "score": 0.82, "n": -3, "ok": true, "list": ["a\"b\\c\n", 1]}"#)
        #expect(JSON.parse(text) == doc)
    }

    @Test func unicodeEscapesAndSurrogatePairs() {
        #expect(JSON.parse(#""caf\u00e9 \ud83d\ude00""#)?.string == "café 😀")
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "nul", "\"unterminated", "{\"a\": 1} trailing"])
    func malformedInputIsRejected(_ text: String) {
        #expect(JSON.parse(text) == nil)
    }
}
