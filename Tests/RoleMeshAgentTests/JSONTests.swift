import Foundation
import Testing
import RoleMeshAgent
import RoleMeshControl
import RoleMeshTaskChannel

/// The control socket's JSON: every request survives the trip, and replies have the
/// contract's keys and value types (docs/contract.md), `null`s included.
@Suite struct JSONTests {
    static let requests: [ControlRequest] = [
        .status, .watch, .leave, .drain, .undrain, .tasks,
        .route(role: "transcode", heavy: true), .route(role: "build", heavy: false),
        .roles(.add, role: "build"), .roles(.remove, role: "build"),
        .backup(.add, role: "transcode", priority: 2), .backup(.remove, role: "transcode", priority: 1),
        .signal(.set(["load=0.5", "on_battery=true"])), .signal(.clear),
        .submit(SubmitRequest(role: "job", task: "mark", args: ["a \"b\"\n", "é/😀"], heavy: true, to: "desk",
                              detach: true, queue: true, retry: 2)),
        .submit(SubmitRequest(role: "job", task: "mark")),
        .logs(id: "7f3a0011", follow: true),
        .invite(name: "laptop", seconds: 3600), .revoke(name: "laptop"),
        .invite(name: "nas", seconds: 60, grants: ["build", "backup:gpu"]), .revoke(name: "laptop", cascade: true),
        .introducers(.add, name: "homeserver"), .introducers(.remove, name: "desk"),
        .grant(.add, name: "pi", roles: ["build"]), .grant(.remove, name: "pi", roles: ["backup:gpu"]),
        .trust, .recovered(statement: #"{"kind":"revoke"}"#),
    ]

    @Test(arguments: requests)
    func everyRequestRoundTrips(_ request: ControlRequest) throws {
        let line = ControlJSON.line(request)
        #expect(line.last == 10 && !line.dropLast().contains(10), "one line")
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["cmd"] as? String == request.command)
        #expect(ControlJSON.decode(ControlRequest.self, from: line.dropLast()) == request)
    }

    @Test func requestsInTheOlderHandWrittenShapeStillDecode() {
        #expect(ControlJSON.decode(ControlRequest.self, from: #"{"cmd": "route", "role": "x"}"#) == .route(role: "x", heavy: false))
        #expect(ControlJSON.decode(ControlRequest.self, from: #"{"cmd": "signal", "clear": true}"#) == .signal(.clear))
        #expect(ControlJSON.decode(ControlRequest.self, from: #"{"cmd": "nope"}"#) == nil)
        #expect(ControlJSON.decode(ControlRequest.self, from: #"{"role": "x"}"#) == nil)
    }

    func object(_ value: some Encodable) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: ControlJSON.encode(value)) as? [String: Any])
    }

    @Test func statusHasTheContractShape() throws {
        let me = MemberStatus(name: "desk", address: "127.0.0.2:7946", state: "alive", incarnation: 4, roles: ["build"],
                              backup: ["transcode": 1], draining: false, score: 0.82, lastHeardMs: 140,
                              signals: SignalsStatus(load: 0.30000000000000004, cpus: 8, memFree: 0.61, onBattery: false),
                              reach: "direct")
        let s = StatusReply(me: "desk", members: [me], roles: ["build": RoleRoutes(route: "desk", heavyRoute: nil)],
                            dropped: DroppedCounts(badSignature: 1, unknownKey: 2, replay: 3, malformed: 4, rateLimited: 5))
        let o = try object(s)
        #expect(Set(o.keys) == ["self", "members", "roles", "dropped", "forwards"])
        #expect(o["self"] as? String == "desk")
        let m = try #require((o["members"] as? [[String: Any]])?.first)
        #expect(Set(m.keys) == ["name", "address", "state", "incarnation", "roles", "backup", "draining", "score",
                                "last_heard_ms", "signals", "reach", "services"])
        #expect(m["reach"] as? String == "direct")
        #expect(m["incarnation"] as? Int == 4 && m["last_heard_ms"] as? Int == 140 && m["score"] as? Double == 0.82)
        #expect(m["backup"] as? [String: Int] == ["transcode": 1])
        let sig = try #require(m["signals"] as? [String: Any])
        #expect(Set(sig.keys) == ["load", "cpus", "mem_free", "battery", "on_battery", "throttled", "idle", "idle_s"])
        #expect(sig["battery"] is NSNull && sig["throttled"] is NSNull, "unknown signals are null, not missing")
        #expect(sig["load"] as? Double == 0.3)
        let routes = try #require((o["roles"] as? [String: Any])?["build"] as? [String: Any])
        #expect(routes["route"] as? String == "desk" && routes["heavy_route"] is NSNull)
        #expect(o["dropped"] as? [String: Int] == ["bad_signature": 1, "unknown_key": 2, "replay": 3, "malformed": 4,
                                                   "rate_limited": 5, "bad_mac": 0, "not_introducer": 0, "forged_slot_record": 0])
        #expect(o["revoked"] == nil, "only a revoked node's status says so")
        #expect(ControlJSON.decode(StatusReply.self, from: ControlJSON.encode(s)) == s)
        // Stable output: the same reply, the same bytes.
        #expect(ControlJSON.string(s) == ControlJSON.string(ControlJSON.decode(StatusReply.self, from: ControlJSON.encode(s))!))
    }

    @Test func routeHasTheContractShape() throws {
        let none = RouteReply(role: "transcode", heavy: true, node: nil, skipped: [.init(node: "laptop", reason: "on battery (40%)")],
                              error: "no node can take heavy transcode now", code: 69)
        let wire = try object(none)
        #expect(wire["error"] as? String != nil && wire["code"] as? Int == 69)
        let printed = try object(none.printed)
        #expect(Set(printed.keys) == ["role", "heavy", "node", "skipped"])
        #expect(printed["node"] is NSNull && printed["heavy"] as? Bool == true)
        #expect(printed["skipped"] as? [[String: String]] == [["node": "laptop", "reason": "on battery (40%)"]])
        #expect(ControlJSON.decode(RouteReply.self, from: ControlJSON.encode(none)) == none)
    }

    @Test func tasksHaveTheContractShape() throws {
        var t = TaskRecord(id: "7f3a0011", role: "metabolism", task: "reindex", node: nil, from: "desk", state: .queued,
                           submitted: "2026-01-02T03:04:05Z")
        t.args = ["--full"]
        let row = try #require((try object(TasksReply(tasks: [t]))["tasks"] as? [[String: Any]])?.first)
        #expect(Set(row.keys) == ["id", "role", "task", "node", "from", "state", "exit_code", "submitted", "started", "finished"])
        #expect(row["node"] is NSNull && row["exit_code"] is NSNull && row["started"] is NSNull)
        #expect(row["state"] as? String == "queued")
        // The journal keeps the arguments.
        let stored = ControlJSON.encode(t, userInfo: [TaskRecord.withArgs: true])
        #expect(ControlJSON.decode(TaskRecord.self, from: stored) == t)
    }

    @Test func watchEventsAndErrors() throws {
        let moved = try object(WatchEvent(event: "role-moved", node: "desk", time: "2026-01-02T03:04:05Z", role: "svc", to: "desk"))
        #expect(Set(moved.keys) == ["event", "node", "time", "role", "from", "to"])
        #expect(moved["from"] is NSNull)
        let alive = try object(WatchEvent(event: "member-alive", node: "desk", time: "t"))
        #expect(Set(alive.keys) == ["event", "node", "time"])
        let e = try object(ErrorReply(error: "no agent", code: 69))
        #expect(e["error"] as? String == "no agent" && e["code"] as? Int == 69)
        var revoked = WatchEvent(event: WatchEvent.memberRevoked, node: "laptop", time: "t")
        revoked.by = "desk"
        let r = try object(revoked)
        #expect(Set(r.keys) == ["event", "node", "time", "by"] && r["by"] as? String == "desk")
    }

    /// `trust --json` as the contract gives it: every key of a key row present, `null`s included.
    @Test func trustHasTheContractShape() throws {
        let reply = TrustReply(keys: [.init(name: "desk", introducedBy: nil, introducedAt: nil, introducer: true, granted: nil, revoked: false),
                                      .init(name: "laptop", introducedBy: "desk", introducedAt: "2026-01-02T03:04:05Z", introducer: false,
                                            granted: ["backup:transcode", "build"], revoked: true)],
                               refused: [.init(kind: "revoke", by: "laptop", name: "desk", reason: "laptop is not an introducer here")])
        let o = try object(reply)
        #expect(Set(o.keys) == ["keys", "refused"])
        let keys = try #require(o["keys"] as? [[String: Any]])
        for k in keys { #expect(Set(k.keys) == ["name", "introduced_by", "introduced_at", "introducer", "granted", "revoked"]) }
        #expect(keys[0]["granted"] is NSNull && keys[0]["introduced_by"] is NSNull)
        #expect(keys[1]["granted"] as? [String] == ["backup:transcode", "build"] && keys[1]["revoked"] as? Bool == true)
        let refused = try #require((o["refused"] as? [[String: Any]])?.first)
        #expect(Set(refused.keys) == ["kind", "by", "name", "reason"])
        #expect(ControlJSON.decode(TrustReply.self, from: ControlJSON.encode(reply)) == reply)
    }
}

extension ControlRequest: CustomTestStringConvertible {
    public var testDescription: String { ControlJSON.string(self) }
}
