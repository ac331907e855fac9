import XCTest
import RoleMeshCore

/// Issue 26's pure half: service.toml, health from check results, heartbeat field 25, and rule 5
/// of the routing rules (a connection goes to a node serving the service healthy).
final class ServiceTests: XCTestCase {
    let file = "roles/llm/service.toml"

    func testTheContractsExampleParses() throws {
        let text = """
        [api]                     # the service's name
        port = 11434
        run = "serve"
        check = "tcp"
        where = "holders"

        [web]
        port = 8096
        check = "healthcheck"
        where = "route"
        """
        let s = try ServiceFile.parse(text, role: "llm", file: file)
        XCTAssertEqual(s, [ServiceDefinition(role: "llm", name: "api", port: 11434, run: "serve"),
                           ServiceDefinition(role: "llm", name: "web", port: 8096, check: .executable("healthcheck"), placement: .route)])
        XCTAssertEqual(s[0].id, "llm/api")
    }

    func testErrorsNameFileLineAndKey() {
        func error(_ text: String) -> String {
            do { _ = try ServiceFile.parse(text, role: "llm", file: file); return "no error" } catch { return error.description }
        }
        XCTAssertEqual(error("[api]\nport = 70000"), "roles/llm/service.toml line 2: key \"port\": expected a TCP port 1-65535, found 70000")
        XCTAssertEqual(error("[api]\nport = \"80\""), "roles/llm/service.toml line 2: key \"port\": expected an integer, found a string")
        XCTAssertEqual(error("[api]\nrun = \"serve\""), "roles/llm/service.toml line 2: table [api] lacks the required key \"port\"")
        XCTAssertEqual(error("[api]\nport = 1\nwhere = \"all\""),
                       "roles/llm/service.toml line 3: key \"where\": expected \"holders\" or \"route\", found \"all\"")
        XCTAssertEqual(error("[api]\nport = 1\nrun = \"../bin/sh\""),
                       "roles/llm/service.toml line 3: key \"run\": expected the name of an executable in the role's folder (use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit), found \"../bin/sh\"")
        XCTAssertEqual(error("[api]\nport = 1\nchek = \"tcp\""),
                       "roles/llm/service.toml line 3: unknown key \"chek\" (known keys: port, run, check, where)")
        XCTAssertEqual(error("port = 1"),
                       "roles/llm/service.toml line 1: key \"port\": keys belong in a table named after the service, e.g. [api] above \"port = ...\"")
        XCTAssertTrue(error("[-api]\nport = 1").hasPrefix("roles/llm/service.toml line 2: key \"port\": invalid service name \"-api\""), error("[-api]\nport = 1"))
        XCTAssertEqual(ServiceName.split("llm/api")?.name, "api")
        XCTAssertNil(ServiceName.split("llm/api/x"))
        XCTAssertNil(ServiceName.split("llm/"))
        XCTAssertNil(ServiceName.split("api"))
    }

    func testHealthIsStartingThenThreeFailuresThenOneSuccess() {
        var t = HealthTracker()
        XCTAssertEqual(t.health, .starting)
        XCTAssertTrue(t.record(ok: true))
        XCTAssertEqual(t.health, .healthy)
        XCTAssertFalse(t.record(ok: false, detail: "connection refused"))
        XCTAssertFalse(t.record(ok: false, detail: "connection refused"))
        XCTAssertEqual(t.health, .healthy, "two failures in a row are not enough")
        XCTAssertTrue(t.record(ok: false, detail: "check exit 1"))
        XCTAssertEqual(t.health, .unhealthy)
        XCTAssertEqual(t.detail, "check exit 1")
        XCTAssertFalse(t.record(ok: false, detail: "check exit 1"))
        XCTAssertTrue(t.record(ok: true))
        XCTAssertEqual(t.health, .healthy)
        XCTAssertNil(t.detail)
        XCTAssertTrue(t.fail("run exited with status 3"))
        XCTAssertEqual(t.health, .unhealthy)
    }

    func testServicesTravelInOneHeartbeatFieldAsProtocolMdShows() throws {
        let services = [OfferedService(service: "media/web", health: .unhealthy, detail: "check exit 1", port: 8080, placement: .route),
                        OfferedService(service: "llm/api", health: .healthy, port: 11434)]
        let hex = "19 28 01 00 2c aa 07 6c 6c 6d 2f 61 70 69 00 02 01 1f 90 09 6d 65 64 69 61 2f 77 65 62 0c 63 68 65 63 6b 20 65 78 69 74 20 31"
        let h = Heartbeat(name: "desk", incarnation: 1, seq: 2, address: WireAddress(ip: [127, 0, 0, 1], port: 7946),
                          roles: ["llm"], services: services.sorted { $0.service < $1.service })
        guard case .heartbeat(let back)? = try Wire.decodeBody(type: 1, Wire.encodeBody(.heartbeat(h))) else { return XCTFail() }
        XCTAssertEqual(back, h)
        XCTAssertEqual(Array(Wire.encodeBody(.heartbeat(h)).suffix(42)), hex.split(separator: " ").map { UInt8($0, radix: 16)! },
                       "the example of protocol.md 4")
        // A health this version does not know, or a bad name, rejects the heartbeat.
        var bad = Wire.encodeBody(.heartbeat(h))
        bad[bad.count - 40] = 9
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, bad))
        // Many services: the field stays within 255 bytes (details are cut first), and decodes.
        var many = h
        many.services = (0..<40).map { OfferedService(service: "role\($0)/service", health: .unhealthy, detail: String(repeating: "x", count: 100), port: 1) }
            .sorted { $0.service < $1.service }
        guard case .heartbeat(let cut)? = try Wire.decodeBody(type: 1, Wire.encodeBody(.heartbeat(many))) else { return XCTFail() }
        XCTAssertFalse(cut.services.isEmpty)
        XCTAssertLessThan(cut.services.count, 40)
        XCTAssertEqual(cut.services[0].service, many.services[0].service)
    }

    /// A node of the release before this one reads field 25 as a later version's field: skipped.
    func testAnEarlierReaderSkipsTheField() throws {
        let h = Heartbeat(name: "desk", incarnation: 1, seq: 2, address: WireAddress(ip: [127, 0, 0, 1], port: 7946),
                          services: [OfferedService(service: "llm/api", health: .healthy)])
        var body = Wire.encodeBody(.heartbeat(h))
        // Renumbered to an unknown tag, as an earlier reader sees any field it does not know.
        let at = body.firstIndex(of: 25)!
        body[at] = 200
        guard case .heartbeat(let back)? = try Wire.decodeBody(type: 1, body) else { return XCTFail() }
        XCTAssertEqual(back.services, [])
        XCTAssertEqual(back.name, "desk")
    }

    func m(_ name: String, _ state: MemberState = .alive, roles: [String] = [], backup: [String: Int] = [:],
           load: Double = 0.2, services: [String: ServiceHealth] = [:], detail: String? = nil) -> MemberSnapshot {
        MemberSnapshot(name: name, address: WireAddress(ip: [127, 0, 0, 1], port: 1), state: state, incarnation: 1,
                       roles: roles, backup: backup, draining: false,
                       signals: Signals(load: load, cpus: 4, memFree: 0.5, onBattery: false, throttled: false),
                       lastHeardMs: 0, isSelf: false,
                       services: services.map { OfferedService(service: $0.key, health: $0.value, detail: $0.value == .healthy ? nil : detail) })
    }

    func testAConnectionGoesToAHealthyHolderAndExplainsEverySkip() {
        let view = [m("desk", roles: ["llm"], load: 0.1, services: ["llm/api": .unhealthy], detail: "check exit 1"),
                    m("laptop", roles: ["llm"], load: 0.9, services: ["llm/api": .healthy]),
                    m("pi", roles: ["llm"], services: ["llm/api": .starting]),
                    m("tv", roles: ["llm"]),
                    m("nas", .dead, roles: ["llm"], services: ["llm/api": .healthy])]
        let r = Routing.routeService("llm/api", members: view)
        XCTAssertEqual(r.node, "laptop")
        let why = Dictionary(uniqueKeysWithValues: r.skipped.map { ($0.node, $0.reason) })
        XCTAssertEqual(why["desk"], "service unhealthy: check exit 1")
        XCTAssertEqual(why["pi"], "service unhealthy: starting")
        XCTAssertEqual(why["tv"], "does not offer llm/api")
        XCTAssertEqual(why["nas"], "dead", "the node's state comes before its service's health")
    }

    func testBackupsServeWhenNoHolderServesHealthy() {
        let view = [m("desk", roles: ["llm"], services: ["llm/api": .unhealthy], detail: "connection refused"),
                    m("pi", backup: ["llm": 1], services: ["llm/api": .healthy])]
        XCTAssertEqual(Routing.routeService("llm/api", members: view).node, "pi")
        // The same rules as tasks: a healthy holder comes before any backup, whatever the scores.
        let back = [m("desk", roles: ["llm"], load: 0.9, services: ["llm/api": .healthy]),
                    m("pi", backup: ["llm": 1], load: 0.0, services: ["llm/api": .healthy])]
        let r = Routing.routeService("llm/api", members: back)
        XCTAssertEqual(r.node, "desk")
        XCTAssertTrue(r.skipped[0].reason.hasPrefix("lower priority"), r.skipped[0].reason)
        // Grants apply: a node not granted the role attracts no connection.
        XCTAssertEqual(Routing.routeService("llm/api", members: back, grants: ["desk": RoleGrants(["other"])!]).node, "pi")
    }

    func testNoneOffersIt() {
        let r = Routing.routeService("llm/api", members: [m("desk", roles: ["llm"])])
        XCTAssertNil(r.node)
        XCTAssertEqual(r.failureSentence, "no node offers llm/api")
        let down = Routing.routeService("llm/api", members: [m("desk", roles: ["llm"], services: ["llm/api": .unhealthy], detail: "check exit 1")])
        XCTAssertEqual(down.failureSentence, "no node can serve llm/api now (desk: service unhealthy: check exit 1)")
    }
}

extension ServiceTests {
    func testWhoOffersWhat() {
        let api = ServiceDefinition(role: "llm", name: "api", port: 1, run: "serve")
        let external = ServiceDefinition(role: "llm", name: "ext", port: 3)
        let one = ServiceDefinition(role: "llm", name: "one", port: 2, placement: .route)
        var me = m("pi", backup: ["llm": 1])
        me.isSelf = true
        let healthyDesk = m("desk", roles: ["llm"], services: ["llm/api": .healthy])
        // A backup stands by while a holder serves it healthy, and offers it when none does.
        XCTAssertEqual(ServiceOffering.offered([api, one], me: "pi", members: [healthyDesk, me]), [])
        // One the agent does not run (systemd, docker do) is checked and offered by a backup all along.
        XCTAssertEqual(ServiceOffering.offered([api, one, external], me: "pi", members: [healthyDesk, me]), [external])
        let sickDesk = m("desk", roles: ["llm"], services: ["llm/api": .unhealthy], detail: "connection refused")
        XCTAssertEqual(ServiceOffering.offered([api, one], me: "pi", members: [sickDesk, me]), [api])
        // The role's route: the backup once the holder is dead, for both placements.
        let deadDesk = m("desk", .dead, roles: ["llm"], services: ["llm/api": .healthy])
        XCTAssertEqual(ServiceOffering.offered([api, one], me: "pi", members: [deadDesk, me]), [api, one])
        // A holder offers every holders-service; a route-service only while it is the route.
        var desk = m("desk", roles: ["llm"], load: 0.9)
        desk.isSelf = true
        let other = m("laptop", roles: ["llm"], load: 0.0)
        XCTAssertEqual(ServiceOffering.offered([api, one], me: "desk", members: [desk, other]), [api])
        XCTAssertEqual(ServiceOffering.offered([api, one], me: "desk", members: [desk]), [api, one])
        // Not granted, or not holding the role at all: nothing.
        XCTAssertEqual(ServiceOffering.offered([api, one], me: "desk", members: [desk], grants: ["desk": RoleGrants(["backup:llm"])!]), [])
        XCTAssertEqual(ServiceOffering.offered([api], me: "tv", members: [desk, m("tv")]), [])
    }
}

extension ServiceTests {
    func testForwardEntriesInNodeToml() throws {
        let c = try NodeConfig.parse("name = \"laptop\"\nforward = [\"llm/api\", \"media/web=8096\", \"db/pg=127.0.0.1:15432\"]")
        XCTAssertEqual(c.forwards, [ForwardSpec(service: "llm/api"), ForwardSpec(service: "media/web", port: 8096),
                                    ForwardSpec(service: "db/pg", host: "127.0.0.1", port: 15432)])
        XCTAssertEqual(try NodeConfig.parse(c.render()), c)
        func error(_ text: String) -> String {
            do { _ = try NodeConfig.parse("name = \"laptop\"\n" + text); return "no error" } catch { return error.description }
        }
        XCTAssertEqual(error("forward = [\"llm\"]"),
                       "node.toml line 2: key \"forward\": invalid forward entry \"llm\"; expected \"ROLE/NAME\" or \"ROLE/NAME=[HOST:]PORT\" (a service name, then a local port)")
        XCTAssertTrue(error("forward = [\"llm/api=99999\"]").contains("invalid forward entry \"llm/api=99999\""))
        XCTAssertTrue(error("forward = [\"llm/api\", \"llm/api=1\"]").contains("forwarded twice"))
        XCTAssertEqual(ForwardSpec.local("8080")?.host, "127.0.0.1")
        XCTAssertEqual(ForwardSpec.local("0.0.0.0:8080")?.host, "0.0.0.0")
        XCTAssertNil(ForwardSpec.local("0"))
    }
}
