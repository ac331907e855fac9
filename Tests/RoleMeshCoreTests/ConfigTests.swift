import XCTest
import RoleMeshCore

final class ConfigTests: XCTestCase {
    /// The example from the contract, byte for byte.
    static let contractExample = """
    name = "homeserver"            # required; must match keys/NAME.secret
    listen = "192.168.1.10:7946"   # UDP gossip; the task channel uses TCP on the same address and port
    seeds = ["desk.local:7946"]    # peers to contact on start; may be empty for the first node
    roles = ["metabolism", "storage"]   # roles this node holds actively
    backup = { transcode = 1 }     # roles this node stands by for, with priority (1 is first)
    profile = "lan"                # timing profile: "lan" (default), "travel" (battery-friendly), "fast" (tests on one machine)
    max_tasks = 2                  # tasks this node runs at once; more wait in its queue

    """

    /// Parses `text`, expecting a ConfigError; returns it.
    private func configError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            let config = try NodeConfig.parse(text)
            XCTFail("expected an error, parsed \(config)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func tomlError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            let entries = try TOMLSubset.parse(text)
            XCTFail("expected an error, parsed \(entries)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    // MARK: NodeConfig parsing

    func testContractExampleParses() throws {
        let config = try NodeConfig.parse(Self.contractExample)
        XCTAssertEqual(config, NodeConfig(
            name: "homeserver", listen: "192.168.1.10:7946", seeds: ["desk.local:7946"],
            roles: ["metabolism", "storage"], backup: ["transcode": 1], profile: "lan", maxTasks: 2))
    }

    func testDefaults() throws {
        let config = try NodeConfig.parse("name = \"desk\"\n")
        XCTAssertEqual(config.listen, "0.0.0.0:7946")
        XCTAssertEqual(config.seeds, [])
        XCTAssertEqual(config.roles, [])
        XCTAssertEqual(config.backup, [:])
        XCTAssertEqual(config.profile, "lan")
        XCTAssertEqual(config.maxTasks, 2)
    }

    func testCommentsEverywhere() throws {
        let text = """
        # header comment
           # indented comment

        name = 'desk#1' # a '#' inside a literal string is not a comment
        listen = "10.0.0.2:7000"#no space before the comment
        seeds = [ # after the bracket
          "a.local:7946", # after an item
          # on its own line inside the array
          "b.local:7946"
        ] # after the closing bracket
        roles = ["x#y"] # '#' inside a basic string
        # trailing comment without newline
        """
        // `desk#1` is not a valid node name, so check the TOML layer first.
        let entries = try TOMLSubset.parse(text)
        XCTAssertEqual(entries.map(\.key), ["name", "listen", "seeds", "roles"])
        XCTAssertEqual(entries.map(\.line), [4, 5, 6, 11])
        XCTAssertEqual(entries[0].value, .string("desk#1"))
        XCTAssertEqual(entries[2].value, .array([.string("a.local:7946"), .string("b.local:7946")]))
        XCTAssertEqual(entries[3].value, .array([.string("x#y")]))

        let config = try NodeConfig.parse(text.replacingOccurrences(of: "'desk#1'", with: "'desk'")
            .replacingOccurrences(of: "\"x#y\"", with: "\"x\""))
        XCTAssertEqual(config.name, "desk")
        XCTAssertEqual(config.listen, "10.0.0.2:7000")
        XCTAssertEqual(config.seeds, ["a.local:7946", "b.local:7946"])
        XCTAssertEqual(config.roles, ["x"])
    }

    func testMultiLineArrayWithTrailingCommaAndCRLF() throws {
        let text = "name = \"n1\"\r\nroles = [\r\n  \"a\",\r\n  \"b\",\r\n]\r\nmax_tasks = 4\r\n"
        let config = try NodeConfig.parse(text)
        XCTAssertEqual(config.roles, ["a", "b"])
        XCTAssertEqual(config.maxTasks, 4)
        XCTAssertEqual(try TOMLSubset.parse(text).map(\.line), [1, 2, 6])
    }

    // MARK: NodeConfig errors

    func testUnknownKey() {
        let error = configError("name = \"desk\"\n\nlisen = \"0.0.0.0:1\"\n")
        XCTAssertEqual(error?.line, 3)
        XCTAssertEqual(error?.key, "lisen")
        XCTAssertTrue(error?.description.hasPrefix("node.toml line 3: unknown key \"lisen\"") ?? false, "\(String(describing: error))")
    }

    func testWrongType() {
        let error = configError("name = \"desk\"\nmax_tasks = \"2\"\n")
        XCTAssertEqual(error, ConfigError(line: 2, key: "max_tasks", message: "expected an integer, found a string"))
        XCTAssertEqual(error?.description, "node.toml line 2: key \"max_tasks\": expected an integer, found a string")

        let arrayError = configError("name = \"desk\"\nroles = [\"a\", 2]\n")
        XCTAssertEqual(arrayError?.line, 2)
        XCTAssertEqual(arrayError?.key, "roles")
        XCTAssertEqual(arrayError?.message, "expected an array of strings, found an integer at position 2")

        XCTAssertEqual(configError("name = \"desk\"\nseeds = \"a:1\"\n")?.message, "expected an array of strings, found a string")
    }

    func testMissingName() {
        let error = configError("# nothing but a comment\nlisten = \"0.0.0.0:7946\"\n")
        XCTAssertEqual(error, ConfigError(line: nil, key: "name", message: "missing required key \"name\""))
        XCTAssertEqual(error?.description, "node.toml: missing required key \"name\"")
    }

    func testInvalidNodeName() {
        let error = configError("name = \"-desk\"\n")
        XCTAssertEqual(error?.line, 1)
        XCTAssertEqual(error?.key, "name")
        XCTAssertTrue(error?.message.hasPrefix("invalid node name \"-desk\"") ?? false)
    }

    func testBadListen() {
        for bad in ["0.0.0.0", "0.0.0.0:0", "0.0.0.0:65536", "host:port", ":7946", "::1:7946", "[::1]", "256.1.1.1:80", "a b:1"] {
            let error = configError("name = \"desk\"\n# comment\nlisten = \"\(bad)\"\n")
            XCTAssertEqual(error?.line, 3, bad)
            XCTAssertEqual(error?.key, "listen", bad)
            XCTAssertTrue(error?.message.hasPrefix("expected HOST:PORT") ?? false, bad)
        }
    }

    func testBadSeedReportsKeyLine() {
        let error = configError("name = \"desk\"\nseeds = [\n  \"a.local:7946\",\n  \"nope\",\n]\n")
        XCTAssertEqual(error?.line, 2)
        XCTAssertEqual(error?.key, "seeds")
        XCTAssertTrue(error?.message.hasSuffix("found \"nope\"") ?? false)
    }

    func testDuplicateKey() {
        let error = configError("name = \"desk\"\nprofile = \"lan\"\n\nname = \"other\"\n")
        XCTAssertEqual(error?.line, 4)
        XCTAssertEqual(error?.key, "name")
        XCTAssertEqual(error?.description, "node.toml line 4: duplicate key \"name\" (first set on line 1)")
    }

    func testBadBackupPriority() {
        let zero = configError("name = \"desk\"\nroles = []\nbackup = { transcode = 1, storage = 0 }\n")
        XCTAssertEqual(zero?.line, 3)
        XCTAssertEqual(zero?.key, "backup")
        XCTAssertEqual(zero?.message, "priority of role \"storage\" must be an integer of at least 1, found 0")

        let string = configError("name = \"desk\"\nbackup = { transcode = \"1\" }\n")
        XCTAssertEqual(string?.message, "priority of role \"transcode\" must be an integer of at least 1, found a string")

        XCTAssertEqual(configError("name = \"desk\"\nbackup = [\"transcode\"]\n")?.key, "backup")
    }

    func testBadProfile() {
        let error = configError("name = \"desk\"\nprofile = \"wan\"\n")
        XCTAssertEqual(error, ConfigError(line: 2, key: "profile", message: "expected one of \"lan\", \"travel\", \"fast\", found \"wan\""))
    }

    func testBadMaxTasksAndRoles() {
        XCTAssertEqual(configError("name = \"desk\"\nmax_tasks = 0\n"),
                       ConfigError(line: 2, key: "max_tasks", message: "must be at least 1, found 0"))
        XCTAssertEqual(configError("name = \"desk\"\nmax_tasks = 1.5\n")?.message, "expected an integer, found a float")
        XCTAssertEqual(configError("name = \"desk\"\nroles = [\"a/b\"]\n")?.key, "roles")
        XCTAssertEqual(configError("name = \"desk\"\nroles = [\"a\", \"a\"]\n")?.message, "role \"a\" is listed twice")
    }

    func testEnvPassthrough() throws {
        let config = try NodeConfig.parse("name = \"desk\"\nenv_passthrough = [\"SSH_AUTH_SOCK\", \"_X1\"]\n")
        XCTAssertEqual(config.envPassthrough, ["SSH_AUTH_SOCK", "_X1"])
        XCTAssertEqual(try NodeConfig.parse(config.render()), config)
        XCTAssertEqual(try NodeConfig.parse("name = \"desk\"\n").envPassthrough, [])
        XCTAssertEqual(configError("name = \"desk\"\nenv_passthrough = [\"A=B\"]\n"),
                       ConfigError(line: 2, key: "env_passthrough",
                                   message: "invalid environment variable name \"A=B\"; use letters, digits and '_', not starting with a digit"))
        XCTAssertEqual(configError("name = \"desk\"\nenv_passthrough = [\"1A\"]\n")?.key, "env_passthrough")
        XCTAssertEqual(configError("name = \"desk\"\nenv_passthrough = \"HOME\"\n")?.line, 2)
    }

    // MARK: TOML syntax

    func testScalarValues() throws {
        let text = """
        s = "q\\"b\\\\n\\n\\t\\u00e9"
        l = 'C:\\path'
        i = -1_000
        p = +7
        f = 6.02e+23
        g = -0.5
        t = true
        u = false
        e = {}
        n = { a = 1, "b.c" = "x", d = [1, 2] }
        """
        let values = try TOMLSubset.parse(text).map(\.value)
        XCTAssertEqual(values, [
            .string("q\"b\\n\n\té"), .string("C:\\path"), .integer(-1000), .integer(7),
            .float(6.02e23), .float(-0.5), .bool(true), .bool(false), .table([]),
            .table([("a", .integer(1)), ("b.c", .string("x")), ("d", .array([.integer(1), .integer(2)]))]),
        ])
    }

    func testSyntaxErrors() {
        let cases: [(String, Int, String)] = [
            ("[server]\nname = \"x\"\n", 1, "tables are not supported"),
            ("a = 1\nb = \"open\n", 2, "unterminated string"),
            ("a = 01\n", 1, "invalid number 01"),
            ("a = 1__0\n", 1, "invalid number 1__0"),
            ("a = desk\n", 1, "desk is not quoted: text (an address, a name) must be in quotes, as in \"desk\""),
            // An address without quotes is not "an invalid number": it says what to write.
            ("listen = 127.0.0.9:7000\n", 1, "127.0.0.9:7000 is not quoted"),
            ("listen = 127.0.0.9\n", 1, "127.0.0.9 is not quoted"),
            // A missing `]` is reported where it should be, not on the next key's line.
            ("roles = [\"a\", \"b\"\nseeds = []\n", 1, "missing \"]\": the array opened on line 1 is not closed"),
            ("seeds = [\n  \"a\",\n  \"b\"\nroles = []\n", 3, "missing \"]\": the array opened on line 1"),
            ("a = 1.\n", 1, "invalid number 1."),
            ("a = .5\n", 1, "invalid number .5"),
            ("a = 1 2\n", 1, "unexpected text after the value"),
            ("a =\n", 1, "missing value"),
            ("a = [1,\n2\n", 2, "missing \"]\""),
            ("a = { x = 1,\n}\n", 1, "unterminated inline table"),
            ("a = { x = 1 \n", 1, "unterminated inline table"),
            ("a = { x = 1, }\n", 1, "trailing comma"),
            ("a = { x = 1, x = 2 }\n", 1, "duplicate key \"x\" in inline table"),
            ("a.b = 1\n", 1, "dotted keys are not supported"),
            ("a = \"\\q\"\n", 1, "invalid escape"),
        ]
        for (text, line, message) in cases {
            let error = tomlError(text)
            XCTAssertEqual(error?.line, line, text)
            XCTAssertTrue(error?.message.hasPrefix(message) ?? false, "\(text): \(String(describing: error))")
        }
        XCTAssertEqual(tomlError("\n\nb = \"open\n")?.description, "node.toml line 3: key \"b\": unterminated string")
    }

    // MARK: Rendering

    func testRenderValues() {
        XCTAssertEqual(TOMLSubset.render(.string("a\"b\\c\nd\u{01}")), #""a\"b\\c\nd\u0001""#)
        XCTAssertEqual(TOMLSubset.render(.array([.string("a"), .string("b")])), #"["a", "b"]"#)
        XCTAssertEqual(TOMLSubset.render(.array([])), "[]")
        XCTAssertEqual(TOMLSubset.render(.table([("transcode", .integer(1))])), "{ transcode = 1 }")
        XCTAssertEqual(TOMLSubset.render(.table([("a.b", .integer(2))])), #"{ "a.b" = 2 }"#)
        XCTAssertEqual(TOMLSubset.render(.table([])), "{}")
        XCTAssertEqual(TOMLSubset.render(.float(2)), "2.0")
        XCTAssertEqual(TOMLSubset.render(.bool(false)), "false")
    }

    func testRenderedValuesParseBack() throws {
        let values: [TOMLValue] = [
            .string("tab\there \"quoted\" \\ é \u{7F}"), .integer(Int.min), .float(1e-5), .float(-.infinity),
            .array([.string("x"), .integer(3)]), .table([("k-1", .bool(true)), ("dotted.key", .string("v"))]),
        ]
        for value in values {
            let parsed = try TOMLSubset.parse("k = " + TOMLSubset.render(value))
            XCTAssertEqual(parsed.first?.value, value)
        }
    }

    func testNodeConfigRenderRoundTrips() throws {
        let configs = [
            NodeConfig(name: "desk"),
            NodeConfig(name: "homeserver", listen: "[fe80::1%eth0]:7946", seeds: ["desk.local:7946", "10.0.0.1:1"],
                       roles: ["metabolism", "storage.v2"], backup: ["transcode": 1, "b": 3, "a.x": 3],
                       profile: "travel", maxTasks: 16),
            { var c = NodeConfig(name: "pi"); c.introducers = ["desk", "homeserver"]; return c }(),
            { var c = NodeConfig(name: "tv"); c.recovery = "qc2CIJdzFb6U88cLQBEtlGAP5XByWyPQibujZoIY/8A="; return c }(),
        ]
        for config in configs {
            let text = config.render()
            XCTAssertTrue(text.hasPrefix("#"))
            XCTAssertTrue(text.hasSuffix("\n"))
            XCTAssertEqual(try NodeConfig.parse(text), config, text)
            // `introducers` and `recovery` are written only when set: absent means none but this node, and no recovery key;
            // `forward` only when it lists something.
            XCTAssertEqual(try TOMLSubset.parse(text).map(\.key), NodeConfig.keys.filter {
                ($0 != "introducers" || config.introducers != nil) && ($0 != "recovery" || config.recovery != nil)
                    && ($0 != "forward" || !config.forward.isEmpty)
            })
        }
        XCTAssertTrue(configs[1].render().contains(#"backup = { transcode = 1, "a.x" = 3, b = 3 }"#))
    }

    func testIntroducersParseAndNameTheirLine() throws {
        XCTAssertNil(try NodeConfig.parse("name = \"a\"\n").introducers)
        XCTAssertEqual(try NodeConfig.parse("name = \"a\"\nintroducers = [\"desk\"]\n").introducers, ["desk"])
        XCTAssertEqual(try NodeConfig.parse("name = \"a\"\nintroducers = []\n").introducers, [])
        XCTAssertThrowsError(try NodeConfig.parse("name = \"a\"\nintroducers = [\"bad name\"]\n")) { e in
            XCTAssertTrue("\(e)".contains("line 2"), "\(e)")
            XCTAssertTrue("\(e)".contains("introducers"), "\(e)")
        }
        XCTAssertThrowsError(try NodeConfig.parse("name = \"a\"\nintroducers = \"desk\"\n"))
        XCTAssertEqual(try NodeConfig.parse("name = \"a\"\n").acceptedIntroducers, [], "absent: none but the node itself")
    }

    func testRecoveryIsABase64KeyNamedOnItsLine() throws {
        let key = "qc2CIJdzFb6U88cLQBEtlGAP5XByWyPQibujZoIY/8A="
        XCTAssertEqual(try NodeConfig.parse("name = \"a\"\nrecovery = \"\(key)\"\n").recovery, key)
        for bad in ["\"\"", "\"abc\"", "\"" + String(key.dropLast()) + "A\"", "1"] {
            XCTAssertThrowsError(try NodeConfig.parse("name = \"a\"\nrecovery = \(bad)\n"), bad) { e in
                XCTAssertTrue("\(e)".contains("line 2") && "\(e)".contains("recovery"), "\(e)")
            }
        }
    }

    // MARK: Editing

    func testSettingReplacesOneLineValueKeepingEverythingElse() throws {
        let edited = try TOMLSubset.setting("roles", to: .array([.string("metabolism")]), in: Self.contractExample)
        let expected = Self.contractExample.replacingOccurrences(
            of: #"roles = ["metabolism", "storage"]   # roles"#, with: #"roles = ["metabolism"]   # roles"#)
        XCTAssertNotEqual(expected, Self.contractExample)
        XCTAssertEqual(edited, expected)

        let backup = try TOMLSubset.setting("backup", to: .table([]), in: Self.contractExample)
        XCTAssertTrue(backup.contains("\nbackup = {}     # roles this node stands by for"))
        XCTAssertEqual(try NodeConfig.parse(backup).backup, [:])
    }

    func testSettingReplacesMultiLineValue() throws {
        let text = """
        # my node
        name = "desk"
        roles = [   # active
          "a",  # first
          "b",
        ] # end of roles
        profile = "fast" # keep me

        """
        let edited = try TOMLSubset.setting("roles", to: .array([.string("c")]), in: text)
        XCTAssertEqual(edited, """
        # my node
        name = "desk"
        roles = ["c"] # end of roles
        profile = "fast" # keep me

        """)
        XCTAssertEqual(try NodeConfig.parse(edited).roles, ["c"])
    }

    func testSettingAppendsMissingKey() throws {
        let text = "name = \"desk\" # me\n# last comment"
        let edited = try TOMLSubset.setting("backup", to: .table([("transcode", .integer(2))]), in: text)
        XCTAssertEqual(edited, "name = \"desk\" # me\n# last comment\nbackup = { transcode = 2 }\n")
        XCTAssertEqual(try TOMLSubset.setting("max_tasks", to: .integer(3), in: ""), "max_tasks = 3\n")
        XCTAssertEqual(try TOMLSubset.setting("a", to: .integer(1), in: "b = 2\n"), "b = 2\na = 1\n")
        XCTAssertEqual(try TOMLSubset.setting("a", to: .integer(1), in: "b = 2\r\n"), "b = 2\r\na = 1\n")
    }

    func testSettingRejectsBrokenFile() {
        XCTAssertThrowsError(try TOMLSubset.setting("roles", to: .array([]), in: "roles = [\n"))
    }

    // MARK: Addresses and names

    func testSplitHostPort() throws {
        let v6 = try XCTUnwrap(NodeConfig.splitHostPort("[::1]:7946"))
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.port, 7946)
        let v4 = try XCTUnwrap(NodeConfig.splitHostPort("192.168.1.10:65535"))
        XCTAssertEqual(v4.host, "192.168.1.10")
        XCTAssertEqual(v4.port, 65535)
        XCTAssertEqual(NodeConfig.splitHostPort("desk.local:1")?.host, "desk.local")
        XCTAssertEqual(NodeConfig.splitHostPort("[2001:db8::ffff:192.0.2.1]:80")?.host, "2001:db8::ffff:192.0.2.1")
        XCTAssertEqual(NodeConfig.splitHostPort("[1:2:3:4:5:6:7:8]:80")?.host, "1:2:3:4:5:6:7:8")
        for bad in ["[::1]7946", "[1:2:3:4:5:6:7:8:9]:80", "[1::2::3]:80", "[12345::]:80", "[desk]:80",
                    "desk.local:", "desk.local:+80", "desk..local:80", "-desk:80", "1.2.3:80", "x:99999"] {
            XCTAssertNil(NodeConfig.splitHostPort(bad), bad)
        }
    }

    func testNodeNames() {
        for good in ["a", "homeserver", "desk-2", "my_node.local", "0", String(repeating: "x", count: 63)] {
            XCTAssertTrue(NodeName.isValid(good), good)
        }
        for bad in ["", "-a", ".a", "_a", "a/b", "a b", "é", String(repeating: "x", count: 64)] {
            XCTAssertFalse(NodeName.isValid(bad), bad)
        }
    }
}
