import XCTest
import Foundation
import RoleMeshAgent
import RoleMeshCore
import RoleMeshTaskChannel

/// The task channel's `request` frame as a typed enum, with the bytes on the wire unchanged.
final class TaskRequestTests: XCTestCase {
    static let id = "0123456789abcdef"
    static let submitted = "2026-01-02T03:04:05Z"

    static func payload(_ r: TaskRequest) -> String { String(decoding: Frame(.request, encoding: r).payload, as: UTF8.self) }

    static func parse(_ json: String) -> Result<TaskRequest, TaskRequestError> { TaskRequest.parse(Array(json.utf8)) }

    /// Every operation, in every shape it has: through the frame and back, the same request.
    func testEveryCaseRoundTripsThroughTheFrame() throws {
        let record = SlotRun(role: "job", task: "nightly", slot: 1_767_322_800, id: Self.id, runID: "r1", node: "nas",
                             state: .done, exitCode: 0, started: 1_767_322_801, finished: 1_767_322_802)
        let schedule = ScheduleDefinition(Schedule(role: "job", task: "nightly", every: 86_400))
        let statement = TrustStatement(kind: .introduce, by: "desk", name: "nas", key: [UInt8](repeating: 7, count: 32),
                                       time: 1_767_322_800_000, grants: ["job"], signature: [UInt8](repeating: 9, count: 64))
        let cases: [TaskRequest] = [
            .run(RunRequest(id: Self.id, role: "job", task: "mark", args: ["a b", "c/d", "é\n"], submitted: Self.submitted)),
            .run(RunRequest(id: Self.id, role: "job", task: "mark", detached: true)),
            .run(RunRequest(id: Self.id, role: "job", task: "mark", submitted: Self.submitted, detached: true,
                            background: RunRequest.Background())),
            .run(RunRequest(id: Self.id, role: "job", task: "nightly", submitted: Self.submitted, detached: true,
                            background: RunRequest.Background(schedule: "job/nightly", slot: 1_767_322_800, runID: "r1", force: true))),
            .logs(id: Self.id, follow: true),
            .logs(id: Self.id, follow: false),
            .slots([], schedules: [], trust: []),
            .slots([record], schedules: [schedule], trust: [statement]),
            .slots([record], schedules: nil, trust: nil),
            .relay(to: "nas"),
            .carry(from: "desk"),
            .connect(service: "web/http"),
        ]
        var ops: Set<String> = []
        for r in cases {
            XCTAssertEqual(Frame(.request, encoding: r).decode(TaskRequest.self), r, Self.payload(r))
            XCTAssertEqual(TaskRequest.parse(Frame(.request, encoding: r).payload), .success(r), Self.payload(r))
            ops.insert(r.op.rawValue)
        }
        XCTAssertEqual(ops, Set(TaskRequest.Op.allCases.map(\.rawValue)), "every operation")
    }

    /// The exact bytes the struct of earlier releases wrote for each operation (keys sorted): an
    /// earlier release reads ours, and the wire cannot drift without this failing.
    func testTheBytesOnTheWireAreThoseOfEarlierReleases() {
        let expected: [(TaskRequest, String)] = [
            (.run(RunRequest(id: Self.id, role: "job", task: "mark", args: ["a b", "c/d"], submitted: Self.submitted)),
             #"{"args":["a b","c/d"],"detached":false,"id":"0123456789abcdef","op":"run","role":"job","submitted":"2026-01-02T03:04:05Z","task":"mark"}"#),
            (.run(RunRequest(id: Self.id, role: "job", task: "nightly", submitted: Self.submitted, detached: true,
                             background: RunRequest.Background(schedule: "job/nightly", slot: 1_767_322_800, runID: "r1", force: true))),
             #"{"args":[],"background":true,"detached":true,"force":true,"id":"0123456789abcdef","op":"run","role":"job","run_id":"r1","schedule":"job/nightly","slot":1767322800,"submitted":"2026-01-02T03:04:05Z","task":"nightly"}"#),
            (.run(RunRequest(id: Self.id, role: "job", task: "mark", submitted: Self.submitted, detached: true, background: RunRequest.Background())),
             #"{"args":[],"background":true,"detached":true,"id":"0123456789abcdef","op":"run","role":"job","submitted":"2026-01-02T03:04:05Z","task":"mark"}"#),
            (.logs(id: Self.id, follow: true), #"{"follow":true,"id":"0123456789abcdef","op":"logs"}"#),
            (.slots([], schedules: [], trust: []), #"{"op":"slots","records":[],"schedules":[],"trust":[]}"#),
            (.relay(to: "nas"), #"{"op":"relay","to":"nas"}"#),
            (.carry(from: "desk"), #"{"from":"desk","op":"carry"}"#),
            (.connect(service: "web/http"), #"{"op":"connect","service":"web/http"}"#),
        ]
        for (r, bytes) in expected { XCTAssertEqual(Self.payload(r), bytes) }
    }

    /// What an earlier release (or a careless peer) may send: read field by field, as before.
    func testFieldsAreReadLeniently() {
        // A mistyped optional field is a missing one; `submitted` and `detached` may be absent.
        XCTAssertEqual(Self.parse(#"{"op":"run","id":"0123456789abcdef","role":"job","task":"mark","args":"x","detached":"yes"}"#),
                       .success(.run(RunRequest(id: Self.id, role: "job", task: "mark"))))
        // `background` other than true is an ordinary run; its slot fields are then ignored.
        XCTAssertEqual(Self.parse(#"{"op":"run","id":"0123456789abcdef","role":"job","task":"mark","background":false,"schedule":"job/x"}"#),
                       .success(.run(RunRequest(id: Self.id, role: "job", task: "mark"))))
        XCTAssertEqual(Self.parse(#"{"op":"logs","id":"0123456789abcdef"}"#), .success(.logs(id: Self.id, follow: false)))
        // A slots request may lack its records (none) and its schedules (an earlier release).
        XCTAssertEqual(Self.parse(#"{"op":"slots"}"#), .success(.slots([], schedules: nil, trust: nil)))
        // One malformed statement is dropped alone.
        let good = #"{"kind":"revoke","by":"desk","name":"nas","key":"0707070707070707070707070707070707070707070707070707070707070707","time":1,"sig":"09"}"#
        guard case .success(.slots(_, _, let trust)) = Self.parse(#"{"op":"slots","records":[],"trust":[\#(good),{"kind":"nope"}]}"#) else {
            return XCTFail("a bad statement failed the whole exchange")
        }
        XCTAssertEqual(trust?.map(\.name), ["nas"])
    }

    /// An op this node does not know, or none: "unknown request" (as before); a payload that is
    /// not a JSON object: no answer at all (as before).
    func testAnUnknownOpIsTold() {
        XCTAssertEqual(Self.parse(#"{"op":"join","roles":[],"backup":[]}"#), .failure(.unknownOp("join")))
        XCTAssertEqual(Self.parse(#"{"op":"launch","id":"0123456789abcdef"}"#), .failure(.unknownOp("launch")))
        XCTAssertEqual(Self.parse(#"{"id":"0123456789abcdef"}"#), .failure(.unknownOp(nil)))
        XCTAssertEqual(Self.parse(#"{"op":7}"#), .failure(.unknownOp(nil)))
        XCTAssertEqual(Self.parse("not json"), .failure(.notAnObject))
        XCTAssertEqual(Self.parse(#"["op","run"]"#), .failure(.notAnObject))
        XCTAssertNil(Frame(.request, Array(#"{"op":"launch"}"#.utf8)).decode(TaskRequest.self))
    }

    /// A known op without a field it needs (or with that field of the wrong type) is malformed,
    /// naming the field.
    func testAMissingRequiredFieldIsMalformed() {
        XCTAssertEqual(Self.parse(#"{"op":"run","role":"job","task":"mark"}"#), .failure(.malformed(op: .run, field: "id")))
        XCTAssertEqual(Self.parse(#"{"op":"run","id":"0123456789abcdef","role":5,"task":"mark"}"#), .failure(.malformed(op: .run, field: "role")))
        XCTAssertEqual(Self.parse(#"{"op":"run","id":"0123456789abcdef","role":"job"}"#), .failure(.malformed(op: .run, field: "task")))
        XCTAssertEqual(Self.parse(#"{"op":"logs","follow":true}"#), .failure(.malformed(op: .logs, field: "id")))
        XCTAssertEqual(Self.parse(#"{"op":"relay"}"#), .failure(.malformed(op: .relay, field: "to")))
        XCTAssertEqual(Self.parse(#"{"op":"carry","from":null}"#), .failure(.malformed(op: .carry, field: "from")))
        XCTAssertEqual(Self.parse(#"{"op":"connect","service":["web/http"]}"#), .failure(.malformed(op: .connect, field: "service")))
    }
}
